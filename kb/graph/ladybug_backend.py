"""The embedded engine: LadybugDB, bulk-loaded with COPY from Arrow tables.

A load rebuilds the database file from scratch: COPY into empty tables is the fast path, and
UNWIND batches from Python are about a thousand times slower on this engine. An incremental
build instead calls `update` with a small delta (kb/graph/delta.py): COPY appends the new rows,
Cypher removes and recounts the rest, all in one transaction.
"""

from __future__ import annotations

import glob
import logging
import shutil
from pathlib import Path
from typing import Any

import ladybug
import pyarrow as pa

from kb.errors import EngineError
from kb.graph.backend import GraphTables, Row, plain
from kb.graph.delta import GraphDelta, apply_delta
from kb.graph.schema import NODE_BY_LABEL, NODES, RELS, NodeSpec, Prop, RelSpec

logger = logging.getLogger(__name__)

_ARROW_TYPES = {
    "STRING": pa.string(), "INT64": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
    "STRING[]": pa.list_(pa.string()),
}


class LadybugBackend:
    """A knowledge base in one LadybugDB database file."""

    name = "ladybug"

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._open()

    def _open(self) -> None:
        try:
            self._db = ladybug.Database(str(self.path), read_only=self.read_only)
            self._conn = ladybug.Connection(self._db)
        except RuntimeError as error:
            raise EngineError(f"{self.path}: cannot open the database: {error}") from error

    def load(self, tables: GraphTables) -> None:
        """Replace the whole database. The new one is written beside it and then moved over
        it, so that a build cut short leaves the previous knowledge base as it was."""
        scratch = self.path.with_name(self.path.name + ".building")
        remove_database(scratch)
        building = LadybugBackend(scratch)
        try:
            for statement in schema_statements():
                building._conn.execute(statement)
            building.insert(tables)
        except BaseException:
            building.close()
            remove_database(scratch)
            raise
        building.close()
        self.close()
        remove_database(self.path)
        for suffix in ("", ".wal"):
            written = scratch.with_name(scratch.name + suffix)
            if written.exists():
                written.rename(self.path.with_name(self.path.name + suffix))
        self._open()

    def insert(self, tables: GraphTables) -> None:
        """Add rows to what the database holds (COPY appends to a table that has rows)."""
        for spec in NODES:
            self._copy(spec.label, _node_table(spec, tables.nodes[spec.label]))
        for rel in RELS:
            self._copy(rel.type, _rel_table(rel, tables.rels[rel.type]))

    def update(self, delta: GraphDelta) -> None:
        """Apply an incremental build's delta in one transaction: all of it or none."""
        self._conn.execute("BEGIN TRANSACTION")
        try:
            apply_delta(self, delta)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @property
    def state_path(self) -> Path:
        """Where an incremental build keeps what it read, beside the database file."""
        return self.path.with_name(self.path.name + ".kbstate")

    def _copy(self, table_name: str, table: pa.Table) -> None:
        if table.num_rows:
            self._conn.execute(f"COPY {table_name} FROM $rows", {"rows": table})
        logger.info("loaded %d %s", table.num_rows, table_name)

    def query(self, text: str, params: dict[str, Any] | None = None) -> list[Row]:
        logger.debug("query: %s %s", text, params)
        try:
            result = self._conn.execute(text, params or {})
        except RuntimeError as error:
            raise EngineError(f"query failed: {error}") from error
        columns = result.get_column_names()
        rows = []
        while result.has_next():
            rows.append(dict(zip(columns, plain(result.get_next()), strict=True)))
        return rows

    def holds_graph(self) -> bool:
        """Whether the database has the knowledge base's tables (a new file has none)."""
        return bool(self.query("CALL show_tables() RETURN name"))

    def close(self) -> None:
        for handle in ("_conn", "_db"):
            if hasattr(self, handle):
                getattr(self, handle).close()
                delattr(self, handle)


def schema_statements() -> list[str]:
    statements = []
    for spec in NODES:
        columns = ", ".join(f"{p.name} {p.type}" for p in spec.props)
        statements.append(
            f"CREATE NODE TABLE {spec.label}({columns}, PRIMARY KEY({spec.key}))")
    for rel in RELS:
        columns = "".join(f", {p.name} {p.type}" for p in rel.props)
        statements.append(f"CREATE REL TABLE {rel.type}(FROM {rel.source} TO {rel.target}"
                          f"{columns})")
    return statements


def _node_table(spec: NodeSpec, rows: list[Row]) -> pa.Table:
    return _arrow(spec.props, rows)


def _rel_table(rel: RelSpec, rows: list[Row]) -> pa.Table:
    source_key = NODE_BY_LABEL[rel.source].key
    target_key = NODE_BY_LABEL[rel.target].key
    ends = (Prop("_from", _key_type(rel.source, source_key)),
            Prop("_to", _key_type(rel.target, target_key)))
    return _arrow((*ends, *rel.props), rows)


def _key_type(label: str, key: str) -> str:
    return next(p.type for p in NODE_BY_LABEL[label].props if p.name == key)


def _arrow(props: tuple[Prop, ...], rows: list[Row]) -> pa.Table:
    schema = pa.schema([(p.name, _ARROW_TYPES[p.type]) for p in props])
    columns = {p.name: [row.get(p.name) for row in rows] for p in props}
    return pa.table(columns, schema=schema)


def remove_database(path: Path) -> None:
    """Remove a database file, its write-ahead log and any checkpoint locks left behind."""
    locks = path.parent.glob(f"{glob.escape(path.name)}.checkpoint.*.lock")
    for candidate in (path, path.with_name(path.name + ".wal"), *locks):
        if candidate.is_dir():
            shutil.rmtree(candidate)
        elif candidate.exists():
            candidate.unlink()
