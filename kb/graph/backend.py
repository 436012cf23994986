"""The backend interface both engines implement, and the tables a build hands them.

A build turns rules and ATT&CK into `GraphTables`: rows per node label and per relationship
type, described by `kb.graph.schema`. A backend loads them and answers Cypher with parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from kb.graph.schema import NODES, RELS

Row = dict[str, Any]


@dataclass
class GraphTables:
    """Node rows per label (keyed by the label's key property, no duplicates) and relationship
    rows per type (each with `_from` and `_to` keys of its end nodes)."""

    nodes: dict[str, list[Row]] = field(default_factory=lambda: {n.label: [] for n in NODES})
    rels: dict[str, list[Row]] = field(default_factory=lambda: {r.type: [] for r in RELS})

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in (*self.nodes.items(), *self.rels.items())}


class Backend(Protocol):
    """A graph engine holding one knowledge base."""

    name: str

    def load(self, tables: GraphTables) -> None:
        """Make the graph hold exactly `tables`: what is new is added, what changed is updated,
        what is gone is removed."""

    def query(self, text: str, params: dict[str, Any] | None = None) -> list[Row]:
        """Run one Cypher query with parameters and return its rows as plain dicts."""

    def close(self) -> None: ...


def plain(value: Any) -> Any:
    """An engine value as a plain Python value: Decimal to int or float, lists kept."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value
