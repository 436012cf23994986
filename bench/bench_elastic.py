"""Parse time of the pinned Elastic snapshot against its floor.

Run by hand: `python bench/bench_elastic.py [--corpora DIR] [--repeat N]`.

The floor is what any reader pays: reading every rule file from the opened archive and loading
it with `tomllib`. Then our full parse: `load_context` and `parse_file` (with
`RuleRecord.finish()`) for every rule file, and the same split per query language so the cost
of each parser shows. Figures are the best of N runs, in seconds of CPU time (the process's
own, so that other work on a shared machine counts less), with wall-clock time beside.
"""

from __future__ import annotations

import argparse
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kb.sources import Source
from loaders import elastic

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
ARCHIVE = "elastic-detection-rules.tar.gz"


def best_of(repeat: int, work: Callable[[], object]) -> tuple[tuple[float, float], object]:
    """(CPU seconds, wall seconds) of the fastest of `repeat` runs, and the work's result."""
    best, result = (float("inf"), float("inf")), None
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        result = work()
        best = min(best, (time.process_time() - cpu, time.perf_counter() - wall))
    return best, result


def floor(source: Source, paths: list[str]) -> int:
    """Reading every rule file and loading its TOML."""
    for path in paths:
        tomllib.loads(source.read_text(path))
    return len(paths)


def full_parse(source: Source, paths: list[str]) -> Counter:
    context = elastic.load_context(source)
    statuses: Counter = Counter()
    for path in paths:
        for record in elastic.parse_file(source.rule_file(path), context):
            statuses[(record.language or "-", record.parse_status)] += 1
    return statuses


def language_of(source: Source, path: str) -> str:
    rule = tomllib.loads(source.read_text(path)).get("rule", {})
    return str(rule.get("language") or "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    (opened, _), source = best_of(1, lambda: Source.open(args.corpora / ARCHIVE))
    paths = elastic.rule_paths(source)  # type: ignore[union-attr]
    print(f"elastic: {len(paths)} rule files; archive opened in {opened:.2f} s CPU")

    (floor_cpu, floor_wall), _ = best_of(args.repeat, lambda: floor(source, paths))
    (full_cpu, full_wall), statuses = best_of(args.repeat, lambda: full_parse(source, paths))
    print(f"floor (read + tomllib) {floor_cpu:8.2f} s CPU {floor_wall:8.2f} s wall")
    print(f"full parse             {full_cpu:8.2f} s CPU {full_wall:8.2f} s wall"
          f"   ratio {full_cpu / floor_cpu:.1f}")

    by_language: dict[str, list[str]] = {}
    for path in paths:
        by_language.setdefault(language_of(source, path), []).append(path)
    for language, language_paths in sorted(by_language.items()):
        (cpu, _), _ = best_of(args.repeat, lambda p=language_paths: full_parse(source, p))
        print(f"  {language:8} {len(language_paths):5} files {cpu:8.2f} s CPU")

    for (language, status), count in sorted(statuses.items()):  # type: ignore[union-attr]
        print(f"  {language:8} {status:9} {count:5}")


if __name__ == "__main__":
    main()
