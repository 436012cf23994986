"""Parse time of the pinned YARA-L and Panther snapshots against their floors.

Run by hand: `python bench/bench_chronicle_panther.py [--corpora DIR] [--repeat N]`.

For each snapshot the floor is what any reader pays: reading every rule file from the opened
archive and, for Panther, loading each YAML document (libyaml); YARA-L has no generic loader, so
its floor is reading plus running the grammar's lexer (reading alone is printed too). Then our
full parse: `load_context` and `parse_file` (with `RuleRecord.finish()`) for every rule file.
Figures are the best of N runs, in seconds.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import yaml
from timing import best_of

from kb.sources import Source
from loaders import chronicle, panther

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
ARCHIVES = {"chronicle": "chronicle-detection-rules.tar.gz",
            "panther": "panther-analysis.tar.gz"}


def read_all(source: Source, paths: list[str]) -> int:
    return sum(len(source.read_text(path)) for path in paths)


def chronicle_floor(source: Source, paths: list[str]) -> int:
    """Reading every .yaral file and running the grammar's lexer over it."""
    tokens = 0
    for path in paths:
        tokens += sum(1 for _ in chronicle._PARSER.lex(source.read_text(path)))
    return tokens


def panther_floor(source: Source, paths: list[str]) -> int:
    """Reading every detection YAML file and loading it with libyaml."""
    for path in paths:
        yaml.load(source.read_text(path), Loader=yaml.CSafeLoader)
    return len(paths)


def full_parse(loader, source: Source) -> Counter:
    context = loader.load_context(source)
    statuses: Counter = Counter()
    for path in loader.rule_paths(source):
        for record in loader.parse_file(source.rule_file(path), context):
            statuses[record.parse_status] += 1
    return statuses


def bench(vendor: str, loader, floor: Callable[[Source, list[str]], object],
          corpora: Path, repeat: int) -> None:
    source = Source.open(corpora / ARCHIVES[vendor])
    paths = loader.rule_paths(source)
    read_seconds, chars = best_of(repeat, lambda: read_all(source, paths))
    floor_seconds, _ = best_of(repeat, lambda: floor(source, paths))
    parse_seconds, statuses = best_of(repeat, lambda: full_parse(loader, source))
    print(f"{vendor}: {len(paths)} files, {chars:,} characters")
    print(f"  read every file            {read_seconds:8.3f} s")
    print(f"  floor (read + load/lex)    {floor_seconds:8.3f} s")
    print(f"  full parse                 {parse_seconds:8.3f} s"
          f"   ({parse_seconds / floor_seconds:.1f}x the floor,"
          f" {parse_seconds / read_seconds:.0f}x reading,"
          f" {1000 * parse_seconds / len(paths):.2f} ms per file)")
    print(f"  statuses                   {dict(sorted(statuses.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path,
                        default=Path(os.environ.get("KB_CORPORA", DEFAULT_CORPORA)))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bench("chronicle", chronicle, chronicle_floor, args.corpora, args.repeat)
    bench("panther", panther, panther_floor, args.corpora, args.repeat)


if __name__ == "__main__":
    main()
