"""Benchmark of incremental rebuilds on the full six-vendor catalogue (LadybugDB).

Run by hand: `python bench/bench_incremental.py [--corpora ../shared/corpora]`. It extracts
the six snapshots into a scratch folder (as checkouts would sit on disk) and times, with an
empty cache folder of its own:
  (a) the first build: every file parsed, the graph loaded whole;
  (b) a rebuild with nothing changed;
  (c) a rebuild after one Sigma rule file changed (a new value in its detection): the target
      is under 10% of (a);
  (d) a clean build from scratch into another database, and whether its graph equals (c)'s;
  (e) the alternative kb does not take by default: the same rebuild as a full COPY load from
      the parse cache (no build state, so every record is read back and the graph rebuilt).
With `--neo4j bolt://...` (a scratch server: its graph is replaced) it times (a), (b) and (c)
on Neo4j instead, where an incremental build reads every record from the parse cache and the
backend's `load` writes only the difference, and checks (c) against a clean LadybugDB build.
Figures are wall seconds in this process; the machine may be shared, so (c)/(a) matters more
than either number alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
ARCHIVES = ("sigmahq-sigma", "elastic-detection-rules", "splunk-security_content",
            "azure-sentinel-2022-02", "chronicle-detection-rules", "panther-analysis")
BUNDLE = "mitre-attack-enterprise-18.1-stix21.json.gz"
CHANGED_RULE = "rules/windows/process_creation/proc_creation_win_renamed_whoami.yml"


def extract(corpora: Path, scratch: Path) -> list[Path]:
    folders = []
    for name in ARCHIVES:
        with tarfile.open(corpora / f"{name}.tar.gz") as archive:
            top = archive.getmembers()[0].name.split("/")[0]
            archive.extractall(scratch / "src", filter="data")
        folders.append(scratch / "src" / top)
    return folders


def timed_build(sources: list[Path], bundle: Path, db: Path | str, fresh: bool = False
                ) -> tuple[float, object]:
    from kb.build import build
    from kb.queries import open_kb

    neo4j = db if isinstance(db, str) else None
    backend = open_kb(None if neo4j else db, neo4j, read_only=False)
    started = time.perf_counter()
    report = build(sources, bundle, backend, fresh=fresh)
    seconds = time.perf_counter() - started
    backend.close()
    return seconds, report


def change_one_rule(sigma: Path) -> None:
    path = sigma / CHANGED_RULE
    text = path.read_text(encoding="utf-8")
    marker = "    condition:"
    extra = "    kb_bench:\n        CommandLine|contains: 'kb-bench-value'\n"
    path.write_text(text.replace(marker, extra + marker, 1)
                    .replace("condition: selection", "condition: kb_bench or selection", 1),
                    encoding="utf-8")


def same_graph(first: Path | str, second: Path) -> bool:
    from kb.diff import comparable, stored_tables
    from kb.queries import open_kb

    left = open_kb(None, first) if isinstance(first, str) else open_kb(first)
    right = open_kb(second)
    try:
        return comparable(stored_tables(left)) == comparable(stored_tables(right))
    finally:
        left.close()
        right.close()


def _wipe(uri: str) -> None:
    from kb.graph.neo4j_backend import Neo4jBackend

    backend = Neo4jBackend(uri)
    backend.wipe()
    backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--neo4j", default="", help="a scratch Neo4j server's Bolt URI")
    arguments = parser.parse_args()
    corpora, neo4j = arguments.corpora, arguments.neo4j
    bundle = corpora / BUNDLE
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        os.environ["KB_CACHE_DIR"] = str(scratch / "cache")
        sources = extract(corpora, scratch)
        db: Path | str = neo4j or scratch / "kb.lbug"
        if neo4j:
            _wipe(neo4j)
        figures = {}
        figures["first_build_s"], report = timed_build(sources, bundle, db)
        figures["rules"] = sum(v.rules for v in report.vendors.values())
        figures["no_change_rebuild_s"], _ = timed_build(sources, bundle, db)
        change_one_rule(sources[0])
        figures["one_rule_changed_s"], _ = timed_build(sources, bundle, db)
        figures["ratio_one_rule_vs_first"] = figures["one_rule_changed_s"] / figures[
            "first_build_s"]
        figures["clean_build_s"], _ = timed_build(sources, bundle, scratch / "clean.lbug",
                                                  fresh=True)
        figures["incremental_equals_clean"] = same_graph(db, scratch / "clean.lbug")
        if not neo4j:
            (scratch / "kb.lbug.kbstate").unlink()
            figures["full_copy_from_parse_cache_s"], _ = timed_build(sources, bundle, db)
    for name, value in figures.items():
        shown = f"{value:10.3f}" if isinstance(value, float) else f"{value!s:>10}"
        print(f"{name:32} {shown}")
    sys.exit(0 if figures["incremental_equals_clean"] else 1)


if __name__ == "__main__":
    main()
