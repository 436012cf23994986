"""The server engine: Neo4j 5.26 through the official driver.

A load brings the graph to exactly the given tables without rebuilding it. It reads what the
graph holds, compares it with the tables node by node, and writes only the difference:
nodes that are gone are detached and deleted, new or changed nodes are MERGEd on their key, and
a node whose outgoing relationships of a type changed has those relationships replaced (deleted,
then created from the tables). Writes go in `UNWIND $rows` batches inside managed write
transactions (`session.execute_write`), which the driver retries on transient errors (deadlocks,
leader switches, lost connections) with back-off; every batch is safe to run twice. Labels,
relationship types and property names come from `kb.graph.schema` as fixed text; values always
travel as parameters. An incremental build calls `update` instead, with a small delta
(kb/graph/delta.py) that never reads the whole graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import neo4j
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, DriverError, Neo4jError, ServiceUnavailable

from kb.errors import EngineError
from kb.graph.backend import GraphTables, Row, plain
from kb.graph.delta import GraphDelta, apply_delta
from kb.graph.schema import NODE_BY_LABEL, NODES, RELS, NodeSpec, RelSpec

logger = logging.getLogger(__name__)

# Defaults that match docker-compose.yml; for a local server only.
DEFAULT_URI = "bolt://localhost:7687"
DEFAULT_USER = "neo4j"
DEFAULT_PASSWORD = "kb-local-only"

BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")

BATCH_SIZE = 2000

# Secondary indexes beyond the key constraints, for the properties canned queries filter on.
INDEXES = (("Rule", "vendor"), ("Rule", "language"), ("Value", "field"), ("EventType", "source"))


@dataclass
class _Plan:
    """What one load changes: node keys per label, relationship sources per type."""

    removed: dict[str, list[str]]
    upserted: dict[str, list[Row]]
    rewired: dict[str, set[str]]


class Neo4jBackend:
    """A knowledge base in one database of a Neo4j server."""

    name = "neo4j"

    def __init__(self, uri: str | None = None, user: str | None = None,
                 password: str | None = None, database: str | None = None,
                 connection_timeout: float = 15.0) -> None:
        self.uri = uri or os.environ.get("KB_NEO4J_URI", DEFAULT_URI)
        self.user = user or os.environ.get("KB_NEO4J_USER", DEFAULT_USER)
        password = password if password is not None else os.environ.get(
            "KB_NEO4J_PASSWORD", DEFAULT_PASSWORD)
        self.database = database or os.environ.get("KB_NEO4J_DATABASE") or None
        self._schema_ready = False
        self._driver = _connect(self.uri, self.user, password, connection_timeout)

    # -- loading ---------------------------------------------------------------------------

    def load(self, tables: GraphTables) -> None:
        started = time.perf_counter()
        self.ensure_schema()
        plan = self._plan(tables)

        for label, keys in plan.removed.items():
            self._write_batches(_delete_nodes_query(NODE_BY_LABEL[label]), keys)
        for label, rows in plan.upserted.items():
            self._write_batches(_merge_nodes_query(NODE_BY_LABEL[label]), rows)
        for rel in RELS:
            self._rewire(rel, plan.rewired[rel.type], tables.rels[rel.type])

        _log_plan(plan, tables)
        logger.info("neo4j: %d nodes written, %d removed, relationships replaced for %d nodes, "
                    "in %.1f s", sum(map(len, plan.upserted.values())),
                    sum(map(len, plan.removed.values())), sum(map(len, plan.rewired.values())),
                    time.perf_counter() - started)

    def insert(self, tables: GraphTables) -> None:
        """Add rows to what the graph holds (an incremental build's new nodes and edges)."""
        self.ensure_schema()
        for spec in NODES:
            self._write_batches(_merge_nodes_query(spec),
                                [_node_params(spec, row) for row in tables.nodes[spec.label]])
        for rel in RELS:
            self._write_batches(_create_rels_query(rel),
                                [_rel_params(rel, row) for row in tables.rels[rel.type]])

    def update(self, delta: GraphDelta) -> None:
        """Apply an incremental build's delta (kb/graph/delta.py) without reading the graph.
        Its steps are separate transactions: the caller forgets its build state first, so a
        delta cut short is followed by a full load."""
        apply_delta(self, delta)

    @property
    def state_path(self) -> Path:
        """Where an incremental build keeps what it read: the cache folder, per server and
        database."""
        key = hashlib.blake2b(f"{self.uri}\0{self.database or ''}".encode(),
                              digest_size=8).hexdigest()
        cache = Path(os.environ.get("KB_CACHE_DIR", Path.home() / ".cache" / "kb"))
        return cache / "state" / f"neo4j-{key}.kbstate"

    def ensure_schema(self) -> None:
        """Create the key constraints and indexes the first time; later calls do nothing."""
        if self._schema_ready:
            return
        for statement in schema_statements():
            self._run(statement)
        self._schema_ready = True

    def _plan(self, tables: GraphTables) -> _Plan:
        removed, upserted, rewired = {}, {}, {}
        for spec in NODES:
            stored = self._read(_read_nodes_query(spec), _digest_nodes)
            wanted = {row[spec.key]: row for row in tables.nodes[spec.label]}
            removed[spec.label] = sorted(stored.keys() - wanted.keys())
            upserted[spec.label] = [_node_params(spec, row) for key, row in wanted.items()
                                    if stored.get(key) != _node_digest(spec, row)]
        for rel in RELS:
            stored = self._read(_read_rels_query(rel), _digest_rels)
            wanted = _digest_rels(_rel_entries(rel, tables.rels[rel.type]))
            sources = {row[NODE_BY_LABEL[rel.source].key] for row in tables.nodes[rel.source]}
            rewired[rel.type] = {key for key in stored.keys() | wanted.keys()
                                 if key in sources and stored.get(key) != wanted.get(key)}
        return _Plan(removed, upserted, rewired)

    def _rewire(self, rel: RelSpec, sources: set[str], rows: list[Row]) -> None:
        if not sources:
            return
        self._write_batches(_delete_rels_query(rel), sorted(sources))
        params = [_rel_params(rel, row) for row in rows if row["_from"] in sources]
        created = self._write_batches(_create_rels_query(rel), params)
        if created != len(params):
            logger.warning("%s: %d of %d rows name a missing end node and were skipped",
                           rel.type, len(params) - created, len(params))

    def _write_batches(self, text: str, rows: list[Any]) -> int:
        """Run `text` over `rows` in batches, one managed write transaction each; return the
        sum of the counts the query returns."""
        total = 0
        with self._session() as session:
            for start in range(0, len(rows), BATCH_SIZE):
                batch = rows[start:start + BATCH_SIZE]
                total += self._guard(session.execute_write, _count_tx, text, batch)
        return total

    def _read(self, text: str, digest: Callable[[Iterable[Any]], dict[str, str]]
              ) -> dict[str, str]:
        with self._session() as session:
            return self._guard(session.execute_read, _digest_tx, text, digest)

    # -- querying --------------------------------------------------------------------------

    def query(self, text: str, params: dict[str, Any] | None = None) -> list[Row]:
        logger.debug("query: %s %s", text, params)
        with self._session(notifications=True) as session:
            return self._guard(session.execute_write, _rows_tx, text, params or {})

    def wipe(self) -> None:
        """Delete every node and relationship (constraints and indexes stay)."""
        self._run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS")

    def close(self) -> None:
        self._driver.close()

    # -- plumbing --------------------------------------------------------------------------

    def _session(self, notifications: bool = False) -> neo4j.Session:
        """A session; the load's own queries ask for no server notifications, since types that
        do not exist yet on a fresh graph are expected there."""
        if notifications:
            return self._driver.session(database=self.database)
        return self._driver.session(database=self.database, notifications_min_severity="OFF")

    def _run(self, text: str) -> None:
        """An auto-commit statement: schema changes and CALL IN TRANSACTIONS need one."""
        logger.debug("run: %s", text)
        with self._session() as session:
            self._guard(lambda: session.run(text).consume())

    def _guard(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except (DriverError, Neo4jError) as error:
            raise _engine_error(self.uri, self.user, error) from error


def schema_statements() -> list[str]:
    """One uniqueness constraint per label key and the secondary indexes, all idempotent."""
    statements = [
        f"CREATE CONSTRAINT kb_{spec.label.lower()}_{spec.key} IF NOT EXISTS "
        f"FOR (n:{spec.label}) REQUIRE n.{spec.key} IS UNIQUE" for spec in NODES]
    statements += [
        f"CREATE INDEX kb_{label.lower()}_{prop} IF NOT EXISTS FOR (n:{label}) ON (n.{prop})"
        for label, prop in INDEXES]
    return statements


# -- connection and errors -------------------------------------------------------------------

def _connect(uri: str, user: str, password: str, timeout: float) -> neo4j.Driver:
    scheme, _, rest = uri.partition("://")
    if scheme not in BOLT_SCHEMES or not rest:
        raise EngineError(f"{uri}: not a usable Neo4j URI (use bolt://host:port or "
                          "neo4j://host:port)")
    try:
        driver = GraphDatabase.driver(uri, auth=(user, password), connection_timeout=timeout)
    except (DriverError, ValueError) as error:
        raise EngineError(f"{uri}: not a usable Neo4j URI: {_one_line(error)}") from error
    try:
        driver.verify_connectivity()
    except (DriverError, Neo4jError, OSError) as error:
        driver.close()
        raise _engine_error(uri, user, error) from error
    return driver


def _engine_error(uri: str, user: str, error: Exception) -> EngineError:
    if isinstance(error, AuthError):
        return EngineError(f"{uri}: Neo4j refused the credentials of user {user!r} "
                           "(set KB_NEO4J_USER and KB_NEO4J_PASSWORD)")
    if isinstance(error, ServiceUnavailable | OSError):
        return EngineError(f"{uri}: cannot reach Neo4j ({_reason(error)})")
    if isinstance(error, Neo4jError):
        return EngineError(f"query failed: {error.code}: {_one_line(error.message or error)}")
    return EngineError(f"{uri}: {_one_line(error)}")


def _reason(error: Exception) -> str:
    """The last line of a driver message, which names the cause (refused, timed out, ...)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return _one_line(lines[-1] if lines else type(error).__name__)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


# -- transaction functions: they consume their results, so a retry starts clean --------------

def _count_tx(tx: neo4j.ManagedTransaction, text: str, rows: list[Any]) -> int:
    record = tx.run(text, rows=rows).single()
    return record[0] if record else 0


def _digest_tx(tx: neo4j.ManagedTransaction, text: str,
               digest: Callable[[Iterable[Any]], dict[str, str]]) -> dict[str, str]:
    return digest((record[0], record[1]) for record in tx.run(text))


def _rows_tx(tx: neo4j.ManagedTransaction, text: str, params: dict[str, Any]) -> list[Row]:
    return [plain(record.data()) for record in tx.run(text, params)]


# -- Cypher, from the schema -------------------------------------------------------------------

def _read_nodes_query(spec: NodeSpec) -> str:
    return f"MATCH (n:{spec.label}) RETURN n.{spec.key}, properties(n)"


def _read_rels_query(rel: RelSpec) -> str:
    source, target = NODE_BY_LABEL[rel.source], NODE_BY_LABEL[rel.target]
    return (f"MATCH (a:{rel.source})-[r:{rel.type}]->(b:{rel.target}) "
            f"RETURN a.{source.key}, [b.{target.key}, properties(r)]")


def _delete_nodes_query(spec: NodeSpec) -> str:
    return (f"UNWIND $rows AS key MATCH (n:{spec.label} {{{spec.key}: key}}) "
            "DETACH DELETE n RETURN count(*)")


def _merge_nodes_query(spec: NodeSpec) -> str:
    # SET n = map replaces every property, so one that became null disappears.
    return (f"UNWIND $rows AS row MERGE (n:{spec.label} {{{spec.key}: row.key}}) "
            "SET n = row.props RETURN count(*)")


def _delete_rels_query(rel: RelSpec) -> str:
    key = NODE_BY_LABEL[rel.source].key
    return (f"UNWIND $rows AS key MATCH (:{rel.source} {{{key}: key}})"
            f"-[r:{rel.type}]->(:{rel.target}) DELETE r RETURN count(*)")


def _create_rels_query(rel: RelSpec) -> str:
    source, target = NODE_BY_LABEL[rel.source], NODE_BY_LABEL[rel.target]
    return (f"UNWIND $rows AS row MATCH (a:{rel.source} {{{source.key}: row.from}}) "
            f"MATCH (b:{rel.target} {{{target.key}: row.to}}) "
            f"CREATE (a)-[r:{rel.type}]->(b) SET r = row.props RETURN count(*)")


# -- rows, parameters and digests --------------------------------------------------------------

def _node_props(spec: NodeSpec, row: Row) -> Row:
    return {p.name: row[p.name] for p in spec.props if row.get(p.name) is not None}


def _node_params(spec: NodeSpec, row: Row) -> Row:
    return {"key": row[spec.key], "props": _node_props(spec, row)}


def _rel_props(rel: RelSpec, row: Row) -> Row:
    return {p.name: row[p.name] for p in rel.props if row.get(p.name) is not None}


def _rel_params(rel: RelSpec, row: Row) -> Row:
    return {"from": row["_from"], "to": row["_to"], "props": _rel_props(rel, row)}


def _rel_entries(rel: RelSpec, rows: list[Row]) -> Iterator[tuple[str, list[Any]]]:
    return ((row["_from"], [row["_to"], _rel_props(rel, row)]) for row in rows)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _node_digest(spec: NodeSpec, row: Row) -> str:
    return _hash(_canonical(_node_props(spec, row)))


def _digest_nodes(entries: Iterable[tuple[str, Row]]) -> dict[str, str]:
    return {key: _hash(_canonical(props)) for key, props in entries}


def _digest_rels(entries: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Per source key, a digest of its relationships as a multiset of (target, properties)."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for source, entry in entries:
        grouped[source].append(_canonical(entry))
    return {source: _hash("\n".join(sorted(items))) for source, items in grouped.items()}


def _log_plan(plan: _Plan, tables: GraphTables) -> None:
    for spec in NODES:
        counts = (len(tables.nodes[spec.label]), len(plan.upserted[spec.label]),
                  len(plan.removed[spec.label]))
        if any(counts):
            logger.info("%s: %d nodes, %d written, %d removed", spec.label, *counts)
    for rel in RELS:
        counts = (len(tables.rels[rel.type]), len(plan.rewired[rel.type]))
        if any(counts):
            logger.info("%s: %d relationships, replaced for %d source nodes", rel.type, *counts)
