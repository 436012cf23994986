"""Parse time of the pinned Elastic snapshot against its floor.

Run by hand: `python bench/bench_elastic.py [--corpora DIR] [--repeat N]`.

The floor is what any reader pays: reading every rule file from the opened archive and loading
it with `tomllib`. Then our full parse: `load_context` and `parse_file` (with
`RuleRecord.finish()`) for every rule file, and the same split per query language so the cost
of each parser shows. Figures are the best of N runs, in seconds.
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


def best_of(repeat: int, work: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
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

    opened, source = best_of(1, lambda: Source.open(args.corpora / ARCHIVE))
    paths = elastic.rule_paths(source)  # type: ignore[union-attr]
    print(f"elastic: {len(paths)} rule files; archive opened in {opened:.2f} s")

    floor_seconds, _ = best_of(args.repeat, lambda: floor(source, paths))
    full_seconds, statuses = best_of(args.repeat, lambda: full_parse(source, paths))
    print(f"floor (read + tomllib) {floor_seconds:8.2f} s")
    ratio = full_seconds / floor_seconds
    print(f"full parse             {full_seconds:8.2f} s   ratio {ratio:.1f}")

    by_language: dict[str, list[str]] = {}
    for path in paths:
        by_language.setdefault(language_of(source, path), []).append(path)
    for language, language_paths in sorted(by_language.items()):
        seconds, _ = best_of(args.repeat, lambda p=language_paths: full_parse(source, p))
        print(f"  {language:8} {len(language_paths):5} files {seconds:8.2f} s")

    for (language, status), count in sorted(statuses.items()):  # type: ignore[union-attr]
        print(f"  {language:8} {status:9} {count:5}")


if __name__ == "__main__":
    main()
