"""Build a knowledge base: ATT&CK and rule sources in, a graph and a load report out.

`build` is a short list of steps, each its own function: read ATT&CK, open the sources,
parse every rule file (on every core), settle techniques and duplicates, normalise, write
the graph, report.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from kb.errors import UserError
from kb.graph.backend import Backend
from kb.graph.tables import graph_tables
from kb.model import Problem, RuleRecord
from kb.normalize import normalise
from kb.report import LoadReport
from kb.sources import Source
from loaders import all_loaders
from loaders.attack import AttackCatalog, load_attack

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
PARALLEL_THRESHOLD = 200
CHUNK_SIZE = 64


@dataclass
class OpenSource:
    source: Source
    loader: ModuleType
    context: object
    paths: list[str]


def build(sources: Sequence[str | Path], attack_bundle: str | Path, backend: Backend,
          progress: Progress | None = None) -> LoadReport:
    """Load every rule of `sources` with ATT&CK into `backend`, replacing what it held."""
    started = time.perf_counter()
    report = LoadReport()
    catalog = cached_attack(Path(attack_bundle))

    opened = [open_source(location) for location in sources]
    records = parse_sources(opened, progress)
    records = settle(records, catalog, report)
    for record in records:
        normalise(record)

    info = {"attack_domain": catalog.domain, "attack_version": catalog.version,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **{f"source:{o.loader.VENDOR}": o.source.name for o in opened}}
    tables = graph_tables(catalog, records, info)
    backend.load(tables)

    report.add_records(records)
    report.graph = tables.counts()
    report.attack_version = catalog.version
    report.seconds = round(time.perf_counter() - started, 2)
    logger.info("built %d rules in %.1f s", len(records), report.seconds)
    return report


def cache_dir() -> Path:
    return Path(os.environ.get("KB_CACHE_DIR", Path.home() / ".cache" / "kb"))


def cached_attack(bundle: Path) -> AttackCatalog:
    """The ATT&CK catalogue of a bundle, read once per distinct bundle content."""
    if not bundle.is_file():
        raise UserError(f"{bundle}: no such ATT&CK bundle")
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    cached = cache_dir() / f"attack-{digest[:16]}.json"
    if cached.is_file():
        logger.info("ATT&CK from cache %s", cached)
        return AttackCatalog.from_json(cached.read_text(encoding="utf-8"))
    catalog = load_attack(bundle)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(catalog.to_json(), encoding="utf-8")
    return catalog


def open_source(location: str | Path) -> OpenSource:
    source = Source.open(location)
    for loader in all_loaders():
        if loader.detect(source):
            paths = loader.rule_paths(source)
            logger.info("%s: %s source, %d rule files", source.name, loader.VENDOR, len(paths))
            return OpenSource(source, loader, loader.load_context(source), paths)
    raise UserError(f"{location}: no rules of a known vendor found here")


# Worker processes are forked after this is set, so they read the sources without pickling.
_OPENED: list[OpenSource] = []


def parse_sources(opened: list[OpenSource], progress: Progress | None) -> list[RuleRecord]:
    tasks = [(index, path) for index, item in enumerate(opened) for path in item.paths]
    report = progress or (lambda stage, done, total: None)
    _OPENED[:] = opened
    chunks = [tasks[i:i + CHUNK_SIZE] for i in range(0, len(tasks), CHUNK_SIZE)]
    records: list[RuleRecord] = []
    if len(tasks) < PARALLEL_THRESHOLD or (os.cpu_count() or 1) < 2:
        _collect(map(_parse_chunk, chunks), records, report, len(tasks))
    else:
        with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
            _collect(pool.map(_parse_chunk, chunks), records, report, len(tasks))
    return records


def _collect(results: Iterable[tuple[list[RuleRecord], int]], records: list[RuleRecord],
             progress: Progress, total: int) -> None:
    done = 0
    progress("parse", 0, total)
    for chunk_records, chunk_files in results:
        records.extend(chunk_records)
        done += chunk_files
        progress("parse", done, total)


def _parse_chunk(tasks: list[tuple[int, str]]) -> tuple[list[RuleRecord], int]:
    records = []
    for index, path in tasks:
        item = _OPENED[index]
        for record in item.loader.parse_file(item.source.rule_file(path), item.context):
            record.source_name = item.source.name
            records.append(record)
    return records, len(tasks)


def settle(records: list[RuleRecord], catalog: AttackCatalog,
           report: LoadReport) -> list[RuleRecord]:
    """Resolve technique ids through ATT&CK and keep the first of any duplicated uid."""
    names = technique_names(catalog)
    known = catalog.technique_ids()
    unique: dict[str, RuleRecord] = {}
    for record in records:
        record.techniques = _resolve_techniques(record, catalog, names, known, report)
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


def _resolve_techniques(record: RuleRecord, catalog: AttackCatalog, names: dict[str, str],
                        known: set[str], report: LoadReport) -> tuple[str, ...]:
    wanted = list(record.techniques)
    for name in record.properties.get("technique_names", []):
        if str(name).lower() in names:
            wanted.append(names[str(name).lower()])
        else:
            record.problems.append(Problem("technique", f"unknown technique name {name!r}"))
    resolved = []
    for technique in wanted:
        current = catalog.resolve(technique)
        if current != technique:
            report.redirects.append({"uid": record.uid, "tagged": technique, "now": current})
        if current not in known:
            record.problems.append(Problem("technique", f"unknown ATT&CK id {technique}"))
            continue
        resolved.append(current)
    return tuple(dict.fromkeys(resolved))
