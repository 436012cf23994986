"""Benchmark of the Sentinel loader on the Azure-Sentinel snapshot.

Run by hand: `python bench/bench_sentinel.py [--corpora ../shared/corpora]`. All figures come
from one run, on one core:
  (a) the floor: opening the archive, reading and YAML-loading every rule file (C loader);
  (b) kb's full parse of the same files (YAML, KQL stage by stage, predicate rows), with a cold
      stage cache; and the KQL part alone, over the already loaded queries;
  (c) the ratio of (b) to (a).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from kb.sources import Source
from loaders import sentinel, sentinel_kusto

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def floor(archive: Path) -> float:
    def work():
        source = Source.open(archive)
        for path in sentinel.rule_paths(source):
            yaml.load(source.read_text(path), Loader=yaml.CSafeLoader)
    return timed(work)[0]


def kb_parse(archive: Path) -> tuple[float, int]:
    sentinel_kusto._parse_tree.cache_clear()

    def work():
        source = Source.open(archive)
        return [r for path in sentinel.rule_paths(source)
                for r in sentinel.parse_file(source.rule_file(path))]
    seconds, records = timed(work)
    return seconds, len(records)


def kql_only(archive: Path) -> float:
    source = Source.open(archive)
    queries = [yaml.load(source.read_text(path), Loader=yaml.CSafeLoader).get("query") or ""
               for path in sentinel.rule_paths(source)]

    def work():
        for query in queries:
            sentinel_kusto.parse_kusto(query)
    sentinel_kusto._parse_tree.cache_clear()
    return timed(work)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    archive = parser.parse_args().corpora / "azure-sentinel-2022-02.tar.gz"
    figures: dict[str, float] = {"floor_read_and_yaml_s": floor(archive)}
    figures["kb_parse_s"], figures["rules"] = kb_parse(archive)
    figures["kql_only_s"] = kql_only(archive)
    figures["kb_parse_vs_floor"] = figures["kb_parse_s"] / figures["floor_read_and_yaml_s"]
    figures["kb_ms_per_rule"] = figures["kb_parse_s"] * 1000 / figures["rules"]
    for name, value in figures.items():
        print(f"{name:28} {value:10.2f}")


if __name__ == "__main__":
    main()
