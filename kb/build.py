"""Build a knowledge base: ATT&CK and rule sources in, a graph and a load report out.

`build` is a short list of steps, each its own function: read ATT&CK, open the sources,
plan (which files changed since the last build), read the files that must be read (from the
parse cache where it can, parsing the rest on every core), settle techniques and duplicate
uids, write the graph (whole, or as a delta), report, and keep what was read for next time.
kb/incremental.py explains the parse cache and the build state.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType

from kb import incremental
from kb.config import glob_match
from kb.errors import EngineError, UserError
from kb.graph.backend import Backend
from kb.graph.delta import GraphDelta
from kb.graph.schema import NODES, RELS
from kb.graph.tables import graph_tables, record_fields
from kb.incremental import ParseCache, Plan, RecordSummary, Settled
from kb.model import Problem, RuleRecord
from kb.normalize import normalise
from kb.report import LoadReport, RecordFigures
from kb.sources import Source
from loaders import all_loaders, get_loader
from loaders.attack import AttackCatalog, load_attack

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
PARALLEL_THRESHOLD = 200
CHUNK_SIZE = 64


@dataclass(frozen=True)
class SourceInput:
    """A rule source to build from: where its files are, and what kb records about it."""

    location: Path
    name: str = ""
    vendor: str = "auto"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    origin: str = ""  # the git URL or path as the sources file gives it
    commit: str = ""
    date: str = ""

    def wants(self, path: str) -> bool:
        if self.include and not any(glob_match(path, glob) for glob in self.include):
            return False
        return not any(glob_match(path, glob) for glob in self.exclude)

    def describe(self, vendor: str) -> str:
        """The source for KbInfo `source:<name>`: its vendor and the commit it was read at."""
        if not self.commit:
            return vendor
        return f"{vendor} at {self.commit[:12]}" + (f" ({self.date[:10]})" if self.date else "")


@dataclass
class OpenSource:
    source: Source
    loader: ModuleType
    paths: list[str]
    input: SourceInput = field(default_factory=lambda: SourceInput(Path(".")))
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.input.name or self.source.name

    @cached_property
    def context(self) -> object:
        """What the source's rules share (macros, ...), read when a file must be parsed."""
        return self.loader.load_context(self.source)

    def plan(self) -> incremental.SourcePlan:
        setup = repr((self.loader.VENDOR, str(self.input.location), self.input.include,
                      self.input.exclude))
        tree = incremental.digest("\n".join(f"{path}\0{digest}" for path, digest in
                                            sorted(self.digests.items())).encode())
        return incremental.SourcePlan(self.name, self.loader.VENDOR, setup, tree,
                                      self.input.commit, self.paths, self.digests,
                                      lambda: self.context)


def build(sources: Sequence[str | Path | SourceInput], attack_bundle: str | Path,
          backend: Backend, progress: Progress | None = None, fresh: bool = False
          ) -> LoadReport:
    """Load every rule of `sources` with ATT&CK into `backend`, replacing what it held.

    Only files whose content changed since the backend's last build are parsed again, and the
    graph is updated in place when the backend can; `fresh` ignores both shortcuts.
    """
    started = time.perf_counter()
    if progress:
        progress("attack", 0, 0)
    catalog, attack_digest = cached_attack(Path(attack_bundle)), bundle_digest(attack_bundle)
    opened = [open_source(location) for location in named_inputs(sources)]
    the_plan = plan_build(opened, backend, attack_digest, fresh)

    with ParseCache(incremental_cache_path()) as parse_cache:
        reader = FileReader(opened, the_plan, catalog, parse_cache, progress, fresh)
        settled = incremental.settle(the_plan, reader.read)
    if progress:
        progress("write", 0, 0)
    info = kb_info(catalog, opened, the_plan.build_id)
    graph = write_graph(the_plan, settled, catalog, info, opened, backend)
    report = settled.report(the_plan.slots)
    save_state(the_plan, settled, backend)

    report.graph = graph
    report.build = {"mode": the_plan.mode, "rule_files": len(the_plan.slots),
                    "parsed": reader.parsed, "from_cache": reader.cached}
    report.attack_version = catalog.version
    report.seconds = round(time.perf_counter() - started, 2)
    logger.info("built %d rules (%s) in %.1f s", sum(v.rules for v in report.vendors.values()),
                the_plan.mode, report.seconds)
    return report


def cache_dir() -> Path:
    return Path(os.environ.get("KB_CACHE_DIR", Path.home() / ".cache" / "kb"))


def incremental_cache_path() -> Path:
    return cache_dir() / incremental.CACHE_FILE


def bundle_digest(bundle: str | Path) -> str:
    return hashlib.sha256(Path(bundle).read_bytes()).hexdigest()


def cached_attack(bundle: Path) -> AttackCatalog:
    """The ATT&CK catalogue of a bundle, read once per distinct bundle content."""
    if not bundle.is_file():
        raise UserError(f"{bundle}: no such ATT&CK bundle")
    digest = bundle_digest(bundle)
    cached = cache_dir() / f"attack-{digest[:16]}.json"
    if cached.is_file():
        logger.info("ATT&CK from cache %s", cached)
        return AttackCatalog.from_json(cached.read_text(encoding="utf-8"))
    catalog = load_attack(bundle)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(catalog.to_json(), encoding="utf-8")
    return catalog


# --- opening sources ----------------------------------------------------------------------------


def named_inputs(sources: Sequence[str | Path | SourceInput]) -> list[SourceInput]:
    """Every source as a SourceInput with a unique name (by default its folder or file name)."""
    inputs, seen = [], set()
    for location in sources:
        item = location if isinstance(location, SourceInput) else SourceInput(Path(location))
        name = item.name or _stem(item.location)
        unique, n = name, 1
        while unique in seen:
            n += 1
            unique = f"{name}-{n}"
        seen.add(unique)
        inputs.append(SourceInput(item.location, unique, item.vendor, item.include, item.exclude,
                                  item.origin or str(item.location), item.commit, item.date))
    return inputs


def _stem(location: Path) -> str:
    name = location.resolve().name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        name = name.removesuffix(suffix)
    return name or "source"


def open_source(location: str | Path | SourceInput) -> OpenSource:
    """A source read into memory (only the files its globs let in), its loader and rule files."""
    spec = location if isinstance(location, SourceInput) else SourceInput(Path(location))
    on_disk = Source.open(spec.location)
    files = {path: on_disk.read_bytes(path) for path in on_disk.paths() if spec.wants(path)}
    source = Source(on_disk.name, dict(files))
    loader = _loader(spec, source)
    paths = loader.rule_paths(source)
    logger.info("%s: %s source, %d rule files", source.name, loader.VENDOR, len(paths))
    return OpenSource(source, loader, paths, spec,
                      {path: incremental.digest(data) for path, data in files.items()})


def _loader(spec: SourceInput, source: Source) -> ModuleType:
    if spec.vendor != "auto":
        return get_loader(spec.vendor)
    for loader in all_loaders():
        if loader.detect(source):
            return loader
    raise UserError(f"{spec.location}: no rules of a known vendor found here")


# --- planning -----------------------------------------------------------------------------------


def plan_build(opened: list[OpenSource], backend: Backend, attack_digest: str,
               fresh: bool) -> Plan:
    """Which files this build reads, and whether the backend is updated in place."""
    state_path = getattr(backend, "state_path", None)
    previous = None if fresh else incremental.load_state(state_path)
    if previous is not None and stored_build_id(backend) != previous.build_id:
        logger.info("the knowledge base was built elsewhere since; building in full")
        previous = None
    return incremental.plan([item.plan() for item in opened], previous,
                            incremental.build_fingerprint(attack_digest),
                            can_update=hasattr(backend, "update"))


def stored_build_id(backend: Backend) -> str:
    try:
        rows = backend.query("MATCH (i:KbInfo) WHERE i.key = 'build_id' RETURN i.value AS value")
    except EngineError:
        return ""
    return str(rows[0]["value"]) if rows else ""


# --- reading files ------------------------------------------------------------------------------


class FileReader:
    """Reads the records of chosen files: cached parse results first (unless `fresh`), then the
    parser on every core for the rest; settles and normalises each record and summarises it."""

    def __init__(self, opened: list[OpenSource], the_plan: Plan, catalog: AttackCatalog,
                 parse_cache: ParseCache, progress: Progress | None, fresh: bool = False) -> None:
        self.opened = opened
        self.fresh = fresh
        self.plan = the_plan
        self.catalog = catalog
        self.cache = parse_cache
        self.progress = progress
        self.names = technique_names(catalog)
        self.known = catalog.technique_ids()
        self.parsed = self.cached = 0

    def read(self, indices: list[int]
             ) -> dict[int, tuple[list[RuleRecord], tuple[RecordSummary, ...]]]:
        slots = [self.plan.slots[index] for index in indices]
        blobs = {} if self.fresh else self.cache.get(slot.key for slot in slots)
        self.cache.touch(blobs)
        missing = [slot for slot in slots if slot.key not in blobs]
        parsed = parse_files(self.opened, [(slot.source, slot.path) for slot in missing],
                             self.progress)
        new = {slot.key: parsed[(slot.source, slot.path)] for slot in missing}
        self.cache.put(new)
        blobs.update(new)
        self.parsed += len(missing)
        self.cached += len(slots) - len(missing)
        logger.info("read %d rule files: %d from the parse cache, %d parsed", len(slots),
                    len(slots) - len(missing), len(missing))
        with collection_paused():
            return {index: self._settled(slot, blobs[slot.key])
                    for index, slot in zip(indices, slots, strict=True)}

    def _settled(self, slot: incremental.Slot, blob: bytes
                 ) -> tuple[list[RuleRecord], tuple[RecordSummary, ...]]:
        records: list[RuleRecord] = pickle.loads(blob)
        summaries = []
        for record in records:
            record.source_name = self.opened[slot.source].name
            redirects = resolve_techniques(record, self.catalog, self.names, self.known)
            normalise(record)
            summaries.append(RecordSummary(
                record.uid, record.path, tuple((r["tagged"], r["now"]) for r in redirects),
                RecordFigures.of(record), tuple(sorted(record_fields(record)))))
        return records, tuple(summaries)


# Worker processes are forked after this is set, so they read the sources without pickling.
_OPENED: list[OpenSource] = []


def parse_sources(opened: list[OpenSource], progress: Progress | None) -> list[RuleRecord]:
    """Every rule of the opened sources, parsed afresh, in source then file order."""
    tasks = [(index, path) for index, item in enumerate(opened) for path in item.paths]
    parsed = parse_files(opened, tasks, progress)
    with collection_paused():
        return [record for task in tasks for record in pickle.loads(parsed[task])]


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection for a while: unpickled records hold no cycles, and
    collections over tens of thousands of fresh objects would triple the time it takes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_files(opened: list[OpenSource], tasks: list[tuple[int, str]],
                progress: Progress | None) -> dict[tuple[int, str], bytes]:
    """Parse (source index, path) tasks, on every core when there are many; each file's
    records come back pickled, as the parse cache keeps them."""
    report = progress or (lambda stage, done, total: None)
    for index in {index for index, _ in tasks}:
        _ = opened[index].context  # read before forking, so every worker shares it
    _OPENED[:] = opened
    chunks = [tasks[i:i + CHUNK_SIZE] for i in range(0, len(tasks), CHUNK_SIZE)]
    results: dict[tuple[int, str], bytes] = {}
    if len(tasks) < PARALLEL_THRESHOLD or (os.cpu_count() or 1) < 2:
        _collect(map(_parse_chunk, chunks), results, report, len(tasks))
    else:
        gc.freeze()  # workers then never scan, nor copy, what the parent holds
        try:
            with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
                _collect(pool.map(_parse_chunk, chunks), results, report, len(tasks))
        finally:
            gc.unfreeze()
    return results


def _collect(chunks: Iterable[list[tuple[int, str, bytes]]],
             results: dict[tuple[int, str], bytes], progress: Progress, total: int) -> None:
    progress("parse", 0, total)
    for chunk in chunks:
        for index, path, blob in chunk:
            results[(index, path)] = blob
        progress("parse", len(results), total)


def _parse_chunk(tasks: list[tuple[int, str]]) -> list[tuple[int, str, bytes]]:
    parsed = []
    for index, path in tasks:
        item = _OPENED[index]
        rule_file = item.source.rule_file(path)
        records = item.loader.parse_file(rule_file, item.context)
        for record in records:
            record.source_name = item.name
            record.text = record.text or rule_file.text
        parsed.append((index, path, pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)))
    return parsed


# --- settling techniques and duplicates ---------------------------------------------------------


def settle(records: list[RuleRecord], catalog: AttackCatalog,
           report: LoadReport) -> list[RuleRecord]:
    """Resolve technique ids through ATT&CK and keep the first of any duplicated uid."""
    names = technique_names(catalog)
    known = catalog.technique_ids()
    unique: dict[str, RuleRecord] = {}
    for record in records:
        report.redirects.extend(resolve_techniques(record, catalog, names, known))
        if record.uid in unique:
            report.duplicates.append({"uid": record.uid, "kept": unique[record.uid].path,
                                      "dropped": record.path})
            continue
        unique[record.uid] = record
    return list(unique.values())


def technique_names(catalog: AttackCatalog) -> dict[str, str]:
    """Lower-case technique names to ids; a sub-technique also as `Parent: Sub`."""
    current = [t for t in catalog.techniques if not t["revoked"]]
    names = {t["name"].lower(): t["id"] for t in current}
    parents = {t["id"]: t["name"] for t in current if not t["is_subtechnique"]}
    for technique in current:
        if technique["parent"] in parents:
            full_name = f"{parents[technique['parent']]}: {technique['name']}"
            names[full_name.lower()] = technique["id"]
    return names


def resolve_techniques(record: RuleRecord, catalog: AttackCatalog, names: dict[str, str],
                       known: set[str]) -> list[dict[str, str]]:
    """Set the record's techniques to current ATT&CK ids; return the revocations followed."""
    wanted = list(record.techniques)
    for name in record.properties.get("technique_names", []):
        if str(name).lower() in names:
            wanted.append(names[str(name).lower()])
        else:
            record.problems.append(Problem("technique", f"unknown technique name {name!r}"))
    resolved, redirects = [], []
    for technique in wanted:
        current = catalog.resolve(technique)
        if current != technique:
            redirects.append({"uid": record.uid, "tagged": technique, "now": current})
        if current not in known:
            record.problems.append(Problem("technique", f"unknown ATT&CK id {technique}"))
            continue
        resolved.append(current)
    record.techniques = tuple(dict.fromkeys(resolved))
    return redirects


# --- writing ------------------------------------------------------------------------------------


def kb_info(catalog: AttackCatalog, opened: list[OpenSource], build_id: str) -> dict[str, str]:
    return {"attack_domain": catalog.domain, "attack_version": catalog.version,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_id": build_id,
            **{f"source:{item.name}": item.input.describe(item.loader.VENDOR)
               for item in opened},
            **{f"origin:{item.name}": item.input.origin or str(item.input.location)
               for item in opened}}


def write_graph(the_plan: Plan, settled: Settled, catalog: AttackCatalog, info: dict[str, str],
                opened: list[OpenSource], backend: Backend) -> dict[str, int]:
    """Load the whole graph, or, for a delta build, update the backend in place; return the
    graph's size per label and relationship type."""
    commits = {item.name: item.input.commit for item in opened}
    if not the_plan.delta:
        tables = graph_tables(catalog, settled.kept_records(the_plan.slots), info, commits)
        backend.load(tables)
        return tables.counts()
    added = graph_tables(catalog, settled.kept_records(the_plan.slots, settled.affected), info,
                         commits)
    names = settled.removed_fields | {row["name"] for row in added.nodes["Field"]}
    incremental.forget_state(getattr(backend, "state_path", None))  # a delta cut short
    backend.update(GraphDelta(
        removed_rules=settled.removed, added=added,
        fields=incremental.field_rows(the_plan, settled, names),
        commits=incremental.changed_commits(the_plan, settled), info=added.nodes["KbInfo"]))
    return graph_counts(backend)


def graph_counts(backend: Backend) -> dict[str, int]:
    counts = {}
    for spec in NODES:
        counts[spec.label] = backend.query(f"MATCH (n:{spec.label}) RETURN count(n) AS n")[0]["n"]
    for rel in RELS:
        counts[rel.type] = backend.query(
            f"MATCH (:{rel.source})-[r:{rel.type}]->(:{rel.target}) RETURN count(r) AS n")[0]["n"]
    return counts


def save_state(the_plan: Plan, settled: Settled, backend: Backend) -> None:
    state_path = getattr(backend, "state_path", None)
    if state_path is not None:
        incremental.save_state(state_path, incremental.new_state(the_plan, settled))
