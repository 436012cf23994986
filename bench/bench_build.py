"""Benchmark of the end-to-end build on the Sigma snapshot and the ATT&CK bundle.

Run by hand: `python bench/bench_build.py [--corpora ../shared/corpora]`. All figures come
from one run:
  (a) the floor: reading and YAML-loading every Sigma file with the C loader, and JSON-loading
      the ATT&CK bundle;
  (b) pySigma's own parse of the same files (SigmaRule.from_yaml, one core);
  (c) kb's Sigma parse inside a build (both cores), and `kb build` wall time and peak memory,
      first build (ATT&CK not cached) and a rebuild with nothing changed;
  (d) guide latency, median over the 20 techniques with the most rules, after one warm-up pass
      over the same techniques (the first pass after a build also pays for reading the file).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from sigma.rule import SigmaRule

from kb.build import open_source, parse_sources
from kb.graph.ladybug_backend import LadybugBackend
from kb.queries import guide
from kb.sources import Source
from loaders import sigma

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def floor(archive: Path, bundle: Path) -> float:
    def work():
        source = Source.open(archive)
        for path in sigma.rule_paths(source):
            yaml.load(source.read_text(path), Loader=yaml.CSafeLoader)
        with gzip.open(bundle, "rt", encoding="utf-8") as handle:
            json.load(handle)
    return timed(work)[0]


def pysigma_parse(archive: Path) -> float:
    source = Source.open(archive)
    texts = [source.read_text(path) for path in sigma.rule_paths(source)]

    def work():
        for text in texts:
            with contextlib.suppress(Exception):
                SigmaRule.from_yaml(text, collect_errors=True)
    return timed(work)[0]


def kb_parse(archive: Path) -> float:
    opened = [open_source(archive)]
    return timed(parse_sources, opened, None)[0]


def kb_build(archive: Path, bundle: Path, db: Path, cache: Path) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of one `kb build` in a child process."""
    env = {**os.environ, "KB_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kb", "-q", "build", "--source", str(archive),
                    "--attack", str(bundle), "--db", str(db)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return seconds, peak / 1024


def guide_latency(db: Path) -> float:
    backend = LadybugBackend(db, read_only=True)
    busiest = backend.query(
        "MATCH (r:Rule)-[:DETECTS]->(t:Technique) WHERE r.deprecated = false "
        "RETURN t.id AS id, count(*) AS rules ORDER BY rules DESC, id LIMIT 20")
    for row in busiest:
        guide(backend, row["id"])
    timings = [timed(guide, backend, row["id"])[0] for row in busiest]
    backend.close()
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    corpora = parser.parse_args().corpora
    archive = corpora / "sigmahq-sigma.tar.gz"
    bundle = corpora / "mitre-attack-enterprise-18.1-stix21.json.gz"
    with tempfile.TemporaryDirectory() as scratch:
        db, cache = Path(scratch) / "kb.lbug", Path(scratch) / "cache"
        figures = {
            "floor_yaml_and_attack_json_s": floor(archive, bundle),
            "pysigma_parse_s": pysigma_parse(archive),
            "kb_sigma_parse_s": kb_parse(archive),
        }
        figures["first_build_s"], figures["first_build_peak_mib"] = kb_build(
            archive, bundle, db, cache)
        figures["rebuild_s"], figures["rebuild_peak_mib"] = kb_build(archive, bundle, db, cache)
        figures["guide_median_ms"] = guide_latency(db) * 1000
    figures["kb_parse_vs_pysigma"] = figures["kb_sigma_parse_s"] / figures["pysigma_parse_s"]
    for name, value in figures.items():
        print(f"{name:32} {value:10.2f}")


if __name__ == "__main__":
    main()
