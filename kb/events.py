"""The event taxonomy: which category of event (and which concrete telemetry) a vendor's
event-type key stands for, and which ATT&CK data components each category feeds.

The taxonomy lives in `kb/data/event_taxonomy.yml` (documented in docs/normalisation.md):
each category lists its telemetry, and each telemetry lists the vendor event-type keys (fnmatch
patterns over `<vendor>:<kind>/<name>`) that name it. A key takes the first entry listing it,
in file order: a category's telemetry, then the category's own keys, category by category.

Rules sometimes select their data with a literal comparison instead of a data-selection clause
(`metadata.event_type = "PROCESS_LAUNCH"`, `sourcetype=aws:cloudtrail`); such rows stay rows
(DESIGN.md) and `selection_event_types` also turns them into the event-type keys they name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from typing import Any

import yaml

from kb.model import PredicateRow

logger = logging.getLogger(__name__)

# (vendor, field) of a row that selects data, and the event-type kind its value names.
SELECTION_FIELDS = {
    ("chronicle", "metadata.event_type"): "udm",
    ("chronicle", "metadata.product_event_type"): "product_event_type",
    ("chronicle", "metadata.log_type"): "log_type",
    ("chronicle", "metadata.product_name"): "product",
    ("splunk", "sourcetype"): "sourcetype",
    ("splunk", "eventtype"): "eventtype",
    ("elastic", "event.category"): "event.category",
}
_SELECTION_OPS = frozenset({"eq", "in"})


@dataclass(frozen=True)
class EventClass:
    """Where an event-type key sits in the taxonomy."""

    category: str
    category_name: str
    telemetry: str


@dataclass(frozen=True)
class _Entry:
    pattern: str
    event_class: EventClass


@cache
def taxonomy() -> dict[str, Any]:
    """The taxonomy file as data: category key to its name, data components and telemetry."""
    text = resources.files("kb.data").joinpath("event_taxonomy.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@cache
def _entries() -> tuple[_Entry, ...]:
    entries = []
    for key, category in taxonomy().items():
        for telemetry in category.get("telemetry") or []:
            target = telemetry.get("category", key)
            event_class = EventClass(target, taxonomy()[target]["name"], telemetry["name"])
            entries.extend(_Entry(p, event_class) for p in telemetry["keys"])
        general = EventClass(key, category["name"], "")
        entries.extend(_Entry(p, general) for p in category.get("keys") or [])
    return tuple(entries)


@cache
def classify(key: str) -> EventClass | None:
    """The category and telemetry of an event-type key; None when the taxonomy lacks it."""
    for entry in _entries():
        if fnmatchcase(key, entry.pattern):
            return entry.event_class
    return None


@cache
def sigma_logsource(key: str) -> str:
    """The Sigma logsource key whose field names the telemetry of `key` carries, or ''."""
    for category in taxonomy().values():
        for telemetry in category.get("telemetry") or []:
            if telemetry.get("sigma") and any(fnmatchcase(key, p) for p in telemetry["keys"]):
                return str(telemetry["sigma"])
    return ""


def data_component_names(category: str) -> list[str]:
    """The ATT&CK data component names a category feeds."""
    return list(taxonomy().get(category, {}).get("data_components") or [])


def selection_event_types(vendor: str, rows: Iterable[PredicateRow]) -> list[str]:
    """Event-type keys named by the positive equality rows that select a rule's data."""
    keys = []
    for row in rows:
        kind = SELECTION_FIELDS.get((vendor, row.field))
        if kind and row.op in _SELECTION_OPS and not row.negated and row.value:
            keys.append(f"{vendor}:{kind}/{row.value}")
    return list(dict.fromkeys(keys))
