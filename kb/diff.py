"""What changed between two knowledge bases: rules added, removed and changed per vendor, and
the techniques whose coverage moved.

Either side is a `Snapshot`: the rules of a knowledge base, each with a digest of what it says
(metadata, techniques, predicates, event types; not where or at which commit it was read, nor
corpus reach, which moves when *other* rules change), and its technique tags. A snapshot comes
from a built knowledge base (`snapshot_of_backend`) or from tables built in memory
(`snapshot_of_tables`, which is how two lock files are compared: see kb/sync.py).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kb.config import Config, load_config
from kb.errors import EngineError, UserError
from kb.graph.backend import Backend, GraphTables, Row
from kb.graph.schema import NODE_BY_LABEL, NODES, REL_BY_TYPE, RELS
from kb.queries import open_kb

# What a rule says, by part: the edge types from a rule, and the Rule properties that only say
# where it was read (they change with every sync without the rule changing).
RULE_PARTS = {"techniques": "DETECTS", "predicates": ("FILTERS", "USES"), "events": "OBSERVES"}
PROVENANCE = frozenset({"source", "commit"})
COUNTED = frozenset({"reach"})


@dataclass(frozen=True)
class RuleView:
    uid: str
    vendor: str
    title: str
    path: str
    deprecated: bool
    techniques: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]  # (part, digest)


@dataclass
class Snapshot:
    rules: dict[str, RuleView]
    techniques: dict[str, str]  # id -> name
    info: dict[str, str]


@dataclass(frozen=True)
class RuleChange:
    change: str  # added, removed or changed
    uid: str
    vendor: str
    title: str
    parts: tuple[str, ...] = ()  # for a changed rule: metadata, techniques, predicates, events


@dataclass(frozen=True)
class CoverageChange:
    technique: str
    name: str
    vendor: str
    before: int
    after: int


@dataclass
class Diff:
    info: list[tuple[str, str, str]] = field(default_factory=list)  # (key, old, new)
    rules: list[RuleChange] = field(default_factory=list)
    coverage: list[CoverageChange] = field(default_factory=list)

    def by_vendor(self) -> dict[str, dict[str, int]]:
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for change in self.rules:
            counts[change.vendor][change.change] += 1
        return {vendor: {kind: counts[vendor][kind] for kind in ("added", "removed", "changed")}
                for vendor in sorted(counts)}

    def as_dict(self) -> dict[str, Any]:
        return {"info": [{"key": k, "old": o, "new": n} for k, o, n in self.info],
                "vendors": self.by_vendor(),
                "rules": [asdict(change) for change in self.rules],
                "coverage": [asdict(change) for change in self.coverage]}


# --- reading a knowledge base -------------------------------------------------------------------


def stored_tables(backend: Backend, labels: tuple[str, ...] | None = None,
                  rel_types: tuple[str, ...] | None = None) -> GraphTables:
    """What a knowledge base holds, read back as GraphTables (every label and type by default).
    Row order is the engine's; compare them as sets."""
    tables = GraphTables()
    for spec in NODES:
        if labels is None or spec.label in labels:
            columns = ", ".join(f"n.{p.name} AS {p.name}" for p in spec.props)
            tables.nodes[spec.label] = backend.query(f"MATCH (n:{spec.label}) RETURN {columns}")
    for rel in RELS:
        if rel_types is None or rel.type in rel_types:
            source, target = NODE_BY_LABEL[rel.source].key, NODE_BY_LABEL[rel.target].key
            columns = "".join(f", r.{p.name} AS {p.name}" for p in rel.props)
            tables.rels[rel.type] = backend.query(
                f"MATCH (a:{rel.source})-[r:{rel.type}]->(b:{rel.target}) "
                f"RETURN a.{source} AS _from, b.{target} AS _to{columns}")
    return tables


def snapshot_of_backend(backend: Backend) -> Snapshot:
    return snapshot_of_tables(stored_tables(
        backend, ("Rule", "Technique", "KbInfo"), ("DETECTS", "FILTERS", "USES", "OBSERVES")))


def snapshot_of_tables(tables: GraphTables) -> Snapshot:
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for rel_type in ("DETECTS", "FILTERS", "USES", "OBSERVES"):
        props = [p.name for p in REL_BY_TYPE[rel_type].props if p.name not in COUNTED]
        for row in tables.rels[rel_type]:
            edges[row["_from"]][rel_type].append(
                _canonical([row["_to"], *(row.get(name) for name in props)]))
    rules = {}
    for row in tables.nodes["Rule"]:
        mine = edges[row["uid"]]
        metadata = {k: v for k, v in row.items() if k not in PROVENANCE}
        parts = {"metadata": _digest([_canonical(metadata)])}
        for part, types in RULE_PARTS.items():
            names = (types,) if isinstance(types, str) else types
            parts[part] = _digest([f"{t}:{item}" for t in names for item in mine[t]])
        techniques = tuple(sorted(json.loads(item)[0] for item in mine["DETECTS"]))
        rules[row["uid"]] = RuleView(row["uid"], row["vendor"], row["title"], row["path"],
                                     bool(row["deprecated"]), techniques,
                                     tuple(sorted(parts.items())))
    return Snapshot(rules, {t["id"]: t["name"] for t in tables.nodes["Technique"]},
                    {row["key"]: row["value"] for row in tables.nodes["KbInfo"]})


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _digest(items: list[str]) -> str:
    return hashlib.blake2b("\n".join(sorted(items)).encode(), digest_size=12).hexdigest()


# --- comparing ----------------------------------------------------------------------------------

# KbInfo facts that differ between any two builds and say nothing about their content.
_VOLATILE_INFO = frozenset({"built_at", "build_id"})


def diff_snapshots(old: Snapshot, new: Snapshot) -> Diff:
    result = Diff()
    for key in sorted((old.info.keys() | new.info.keys()) - _VOLATILE_INFO):
        before, after = old.info.get(key, ""), new.info.get(key, "")
        if before != after:
            result.info.append((key, before, after))
    for uid in sorted(old.rules.keys() | new.rules.keys(), key=lambda u: _order(old, new, u)):
        before, after = old.rules.get(uid), new.rules.get(uid)
        if before is None and after is not None:
            result.rules.append(RuleChange("added", uid, after.vendor, after.title))
        elif after is None and before is not None:
            result.rules.append(RuleChange("removed", uid, before.vendor, before.title))
        elif before is not None and after is not None and before.parts != after.parts:
            parts = tuple(name for (name, a), (_, b) in zip(before.parts, after.parts,
                                                            strict=True) if a != b)
            result.rules.append(RuleChange("changed", uid, after.vendor, after.title, parts))
    result.coverage = coverage_changes(old, new)
    return result


def _order(old: Snapshot, new: Snapshot, uid: str) -> tuple[str, str]:
    view = new.rules.get(uid) or old.rules[uid]
    return view.vendor, uid


def coverage(snapshot: Snapshot) -> Counter[tuple[str, str]]:
    """Non-deprecated rules per (technique, vendor)."""
    counts: Counter[tuple[str, str]] = Counter()
    for rule in snapshot.rules.values():
        if not rule.deprecated:
            counts.update((technique, rule.vendor) for technique in rule.techniques)
    return counts


def coverage_changes(old: Snapshot, new: Snapshot) -> list[CoverageChange]:
    before, after = coverage(old), coverage(new)
    names = {**old.techniques, **new.techniques}
    return [CoverageChange(technique, names.get(technique, ""), vendor, before[(technique, vendor)],
                           after[(technique, vendor)])
            for technique, vendor in sorted(before.keys() | after.keys())
            if before[(technique, vendor)] != after[(technique, vendor)]]


def comparable(tables: GraphTables) -> dict[str, list[str]]:
    """Every table as sorted canonical rows, leaving out the build's own id and time: two
    knowledge bases built from the same inputs compare equal."""
    out = {}
    for label, rows in tables.nodes.items():
        kept = [row for row in rows if label != "KbInfo" or row["key"] not in _VOLATILE_INFO]
        out[label] = sorted(_canonical(_plain_row(row)) for row in kept)
    for rel_type, rows in tables.rels.items():
        out[rel_type] = sorted(_canonical(_plain_row(row)) for row in rows)
    return out


def _plain_row(row: Row) -> Row:
    return {key: value for key, value in row.items() if value is not None}


# --- what `kb diff` compares ---------------------------------------------------------------------


def compare(old: str, new: str, config: Path | None = None) -> Diff:
    """Compare two knowledge bases (LadybugDB files or Neo4j URIs) or two lock files."""
    kinds = (_kind(old), _kind(new))
    if kinds.count("lock") == 1:
        raise UserError("compare two knowledge bases or two lock files, not one of each")
    if kinds[0] == "lock":
        settings = load_config(config)
        return diff_snapshots(snapshot_of_lock(settings, Path(old)),
                              snapshot_of_lock(settings, Path(new)))
    return diff_snapshots(_stored_snapshot(old), _stored_snapshot(new))


def _kind(location: str) -> str:
    from kb.graph.neo4j_backend import BOLT_SCHEMES  # the Neo4j driver is slow to import

    if location.split("://", 1)[0] in BOLT_SCHEMES and "://" in location:
        return "neo4j"
    path = Path(location)
    if not path.exists():
        raise UserError(f"{location}: no such knowledge base or lock file")
    if path.is_file() and path.read_bytes()[:1] == b"{":
        return "lock"
    return "db"


def _stored_snapshot(location: str) -> Snapshot:
    neo4j = location if _kind(location) == "neo4j" else None
    backend = open_kb(None if neo4j else location, neo4j, read_only=True)
    try:
        return snapshot_of_backend(backend)
    finally:
        backend.close()


class TablesBackend:
    """A backend that keeps the tables a build loads, in memory, for a snapshot."""

    name = "memory"

    def __init__(self) -> None:
        self.tables = GraphTables()

    def load(self, tables: GraphTables) -> None:
        self.tables = tables

    def query(self, text: str, params: dict[str, Any] | None = None) -> list[Row]:
        raise EngineError("an in-memory build answers no queries")

    def close(self) -> None:
        pass


def snapshot_of_lock(config: Config, lock_path: Path) -> Snapshot:
    """Build what a lock file records, in memory (parse results come from the cache), and
    take its snapshot."""
    from kb.build import build
    from kb.sync import materialise, read_lock

    lock = read_lock(lock_path)
    with tempfile.TemporaryDirectory(prefix="kb-lock-") as scratch:
        inputs, bundle = materialise(config, lock, Path(scratch))
        backend = TablesBackend()
        build(inputs, bundle, backend)
    return snapshot_of_tables(backend.tables)
