"""Update a knowledge base in place: some rules out, some rules in, the rest left alone.

An incremental build hands a `GraphDelta`: the uids of the rules whose nodes go, and the
tables of the rules that come in (with the Field, Value and EventType nodes they use). The
graph then holds what a build from scratch would hold:

- rules leave with their edges (DETACH DELETE), new rules and their edges come in;
- shared nodes (every label a rule points at that ATT&CK does not own: Field, Value,
  EventType) are added when first used, with their own outgoing edges, and removed when no rule
  points at them any more;
- what is counted over the whole catalogue is counted again where it may have moved: each
  Field's aliases and `mapped` flag (the delta brings the rows), and corpus reach on the USES
  edges into every Value a leaving or arriving rule uses;
- rules whose files did not change but whose source moved to a new commit get the new commit;
- KbInfo is replaced.

ATT&CK nodes are never touched: a new bundle means a full build. `apply_delta` speaks the
portable Cypher both engines read; the store adds rows with its own bulk `insert`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

from kb.graph.backend import GraphTables, Row
from kb.graph.schema import NODE_BY_LABEL, NODES, RELS

logger = logging.getLogger(__name__)

RULE = "Rule"
INFO = "KbInfo"
ATTACK_LABELS = frozenset({"Technique", "Tactic", "DataComponent", "DetectionStrategy",
                           "Analytic"})
SHARED_LABELS = tuple(spec.label for spec in NODES
                      if spec.label not in ATTACK_LABELS | {RULE, INFO})
RULE_RELS = tuple(rel for rel in RELS if rel.source == RULE)
SHARED_RELS = tuple(rel for rel in RELS if rel.source in SHARED_LABELS)


@dataclass
class GraphDelta:
    removed_rules: set[str]
    added: GraphTables  # rules coming in, their edges, and the shared nodes they use
    fields: dict[str, Row | None]  # Field rows as they must now read; None: no rule uses it
    commits: list[tuple[str, list[str]]] = field(default_factory=list)  # (commit, rule uids)
    info: list[Row] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"rules_out": len(self.removed_rules),
                "rules_in": len(self.added.nodes[RULE]),
                "recommitted": sum(len(uids) for _, uids in self.commits)}


class DeltaStore(Protocol):
    def query(self, text: str, params: dict[str, Any] | None = None) -> list[Row]: ...

    def insert(self, tables: GraphTables) -> None:
        """Add the rows (nodes first, then relationships) to what the graph holds."""


def apply_delta(store: DeltaStore, delta: GraphDelta) -> None:
    """Bring the graph from the previous build to this one (see the module docstring)."""
    incoming = {row["uid"] for row in delta.added.nodes[RULE]}
    touched = _shared_keys_of(store, delta.removed_rules | incoming)
    _delete_rules(store, delta.removed_rules | incoming)

    store.insert(_new_rows(store, delta))
    _update_fields(store, delta.fields)
    for label in SHARED_LABELS:
        touched[label] |= {row[NODE_BY_LABEL[label].key] for row in delta.added.nodes[label]}
    _delete_orphans(store, touched)
    _update_reach(store, touched.get("Value", set()))
    _update_commits(store, delta.commits)
    _replace_info(store, delta.info)
    logger.info("delta applied: %s", delta.counts())


def _shared_keys_of(store: DeltaStore, uids: set[str]) -> dict[str, set[str]]:
    """The keys of the shared nodes these rules point at."""
    keys: dict[str, set[str]] = defaultdict(set)
    if not uids:
        return keys
    for rel in RULE_RELS:
        if rel.target in SHARED_LABELS:
            key = NODE_BY_LABEL[rel.target].key
            rows = store.query(f"MATCH (r:{RULE})-[:{rel.type}]->(n:{rel.target}) "
                               f"WHERE r.uid IN $uids RETURN DISTINCT n.{key} AS key",
                               {"uids": sorted(uids)})
            keys[rel.target].update(row["key"] for row in rows)
    return keys


def _delete_rules(store: DeltaStore, uids: set[str]) -> None:
    if uids:
        store.query(f"MATCH (r:{RULE}) WHERE r.uid IN $uids DETACH DELETE r",
                    {"uids": sorted(uids)})


def _existing(store: DeltaStore, label: str, keys: set[str]) -> set[str]:
    if not keys:
        return set()
    key = NODE_BY_LABEL[label].key
    rows = store.query(f"MATCH (n:{label}) WHERE n.{key} IN $keys RETURN n.{key} AS key",
                       {"keys": sorted(keys)})
    return {row["key"] for row in rows}


def _new_rows(store: DeltaStore, delta: GraphDelta) -> GraphTables:
    """The rows to insert: the incoming rules and their edges, and the shared nodes not yet in
    the graph with their own edges (a Field's row comes from `delta.fields`)."""
    rows = GraphTables()
    rows.nodes[RULE] = delta.added.nodes[RULE]
    for rel in RULE_RELS:
        rows.rels[rel.type] = delta.added.rels[rel.type]
    new_keys: dict[str, set[str]] = {}
    for label in SHARED_LABELS:
        key = NODE_BY_LABEL[label].key
        wanted = {row[key]: row for row in delta.added.nodes[label]}
        if label == "Field":
            wanted = {name: delta.fields[name] or row for name, row in wanted.items()}
        new_keys[label] = set(wanted) - _existing(store, label, set(wanted))
        rows.nodes[label] = [row for k, row in wanted.items() if k in new_keys[label]]
    for rel in SHARED_RELS:
        rows.rels[rel.type] = [row for row in delta.added.rels[rel.type]
                               if row["_from"] in new_keys[rel.source]]
    return rows


def _update_fields(store: DeltaStore, fields: dict[str, Row | None]) -> None:
    rows = [row for row in fields.values() if row is not None]
    if rows:
        store.query("UNWIND $rows AS row MATCH (f:Field {name: row.name}) "
                    "SET f.mapped = row.mapped, f.aliases = row.aliases", {"rows": rows})


def _delete_orphans(store: DeltaStore, touched: dict[str, set[str]]) -> None:
    """Remove the touched shared nodes no rule points at any more."""
    for label in SHARED_LABELS:
        keys = touched.get(label)
        incoming = [rel.type for rel in RULE_RELS if rel.target == label]
        if not keys or not incoming:
            continue
        key = NODE_BY_LABEL[label].key
        unused = " AND ".join(f"NOT EXISTS {{ MATCH (:{RULE})-[:{rel_type}]->(n) }}"
                              for rel_type in incoming)
        store.query(f"MATCH (n:{label}) WHERE n.{key} IN $keys AND {unused} DETACH DELETE n",
                    {"keys": sorted(keys)})


def _update_reach(store: DeltaStore, keys: set[str]) -> None:
    """Corpus reach on every USES edge into these values, counted as `graph_tables` does."""
    if not keys:
        return
    params = {"keys": sorted(keys)}
    counts = {(row["key"], row["op"]): row["reach"] for row in store.query(
        "MATCH (r:Rule)-[u:USES]->(v:Value) WHERE v.key IN $keys AND u.negated = false "
        "AND r.deprecated = false RETURN v.key AS key, u.op AS op, count(DISTINCT r) AS reach",
        params)}
    pairs = store.query("MATCH (:Rule)-[u:USES]->(v:Value) WHERE v.key IN $keys "
                        "RETURN DISTINCT v.key AS key, u.op AS op", params)
    rows = [{**pair, "reach": counts.get((pair["key"], pair["op"]), 0)} for pair in pairs]
    if rows:
        store.query("UNWIND $rows AS row MATCH (:Rule)-[u:USES]->(v:Value {key: row.key}) "
                    "WHERE u.op = row.op SET u.reach = row.reach", {"rows": rows})


def _update_commits(store: DeltaStore, commits: list[tuple[str, list[str]]]) -> None:
    for commit, uids in commits:
        store.query("MATCH (r:Rule) WHERE r.uid IN $uids SET r.commit = $commit",
                    {"uids": uids, "commit": commit})


def _replace_info(store: DeltaStore, info: list[Row]) -> None:
    store.query(f"MATCH (i:{INFO}) DELETE i")
    tables = GraphTables()
    tables.nodes[INFO] = info
    store.insert(tables)
