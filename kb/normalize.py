"""Cross-vendor normalisation: each predicate row's canonical field and indicator identity.

The alias table (`kb/data/field_aliases.csv`) maps a vendor's field, in a context (an event
type key, or `*` for any), to one canonical field. Fields the table does not know stay
unmapped: `canonical_field` is empty and the load report counts them.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

from kb.model import PredicateRow, RuleRecord

logger = logging.getLogger(__name__)

ANY_CONTEXT = "*"


@dataclass(frozen=True)
class Alias:
    vendor: str
    context: str
    field: str
    canonical: str
    origin: str


@cache
def alias_table() -> dict[tuple[str, str, str], Alias]:
    """The committed alias table, keyed by (vendor, context, field)."""
    text = resources.files("kb.data").joinpath("field_aliases.csv").read_text(encoding="utf-8")
    table = {}
    for row in csv.DictReader(text.splitlines()):
        alias = Alias(row["vendor"], row["context"], row["field"], row["canonical"],
                      row["origin"])
        table[(alias.vendor, alias.context, alias.field)] = alias
    return table


def canonical_field(vendor: str, field: str, event_types: tuple[str, ...]) -> str:
    """The canonical name of a vendor's field, the most specific context first."""
    table = alias_table()
    for context in (*event_types, ANY_CONTEXT):
        alias = table.get((vendor, context, field))
        if alias is not None:
            return alias.canonical
    return ""


def normalise(record: RuleRecord) -> None:
    """Set the canonical field of each of the record's predicate rows."""
    record.predicates = [_normalised_row(record, row) for row in record.predicates]


def _normalised_row(record: RuleRecord, row: PredicateRow) -> PredicateRow:
    if row.computed or not row.field:
        return row
    canonical = canonical_field(record.vendor, row.field, record.event_types)
    return replace(row, canonical_field=canonical) if canonical else row


def indicator(row: PredicateRow) -> tuple[str, str, str]:
    """The (field, op, value) that identifies an indicator across vendors."""
    return row.canonical_field or row.field, row.op, row.value
