"""Everything the site shows, read from the knowledge base in a few batch queries.

One query per kind of thing (tactics, techniques, rules, predicate rows, event types, fields,
build facts) rather than one per page: per-page queries cost seconds per thousand pages, and the
full catalogue has some 25,000 pages.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kb.graph.backend import Backend, Row
from kb.queries import run_query

logger = logging.getLogger(__name__)


@dataclass
class SiteData:
    """The knowledge base as the site sees it, indexed for the page builders."""

    tactics: list[Row]
    techniques: dict[str, Row]
    rules: dict[str, Row]
    predicates: dict[str, list[Row]]
    event_types: dict[str, Row]
    fields: dict[str, Row]
    info: dict[str, str]
    children: dict[str, list[str]] = field(default_factory=dict)
    detected_by: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        children: dict[str, list[str]] = defaultdict(list)
        for technique in self.techniques.values():
            if technique["parent"]:
                children[technique["parent"]].append(technique["id"])
        self.children = dict(children)
        detected_by: dict[str, list[str]] = defaultdict(list)
        for rule in self.rules.values():
            for technique in rule["techniques"]:
                detected_by[technique].append(rule["uid"])
        self.detected_by = dict(detected_by)

    def scope(self, technique: str, include_subtechniques: bool = True) -> list[str]:
        """The technique and, unless told not to, its sub-techniques (the guide's scope)."""
        return [technique, *(self.children.get(technique, []) if include_subtechniques else [])]

    def scope_rules(self, technique: str, include_deprecated: bool = False) -> list[str]:
        """Uids of the rules detecting the technique or one of its sub-techniques."""
        uids = dict.fromkeys(uid for member in self.scope(technique)
                             for uid in self.detected_by.get(member, []))
        return [uid for uid in uids if include_deprecated or not self.rules[uid]["deprecated"]]


def load_site_data(backend: Backend) -> SiteData:
    """Read the whole knowledge base in batch queries."""
    rules = {row["uid"]: _rule(row) for row in run_query(backend, "site_rules")}
    predicates: dict[str, list[Row]] = {uid: [] for uid in rules}
    for row in run_query(backend, "site_predicates"):
        predicates[row.pop("uid")].append(row)
    data = SiteData(
        tactics=run_query(backend, "site_tactics"),
        techniques={row["id"]: row for row in run_query(backend, "site_techniques")},
        rules=rules,
        predicates=predicates,
        event_types={row["event_type"]: row for row in run_query(backend, "site_event_types")},
        fields={row["field"]: row for row in run_query(backend, "site_fields")},
        info={row["key"]: row["value"] for row in run_query(backend, "kb_info")},
    )
    logger.info("site data: %d techniques, %d rules, %d predicate rows, %d fields, "
                "%d event types", len(data.techniques), len(rules),
                sum(map(len, predicates.values())), len(data.fields), len(data.event_types))
    return data


def _rule(row: Row) -> Row:
    """A rule row with its collected lists sorted (engines collect in their own order) and its
    vendor properties read."""
    row["techniques"] = sorted(row["techniques"])
    row["event_types"] = sorted(row["event_types"])
    row["extras"] = _properties(row.get("properties"))
    return row


def _properties(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
