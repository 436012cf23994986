"""Parse time of the pinned Splunk security_content snapshot against its floor.

Run by hand: `python bench/bench_splunk.py [--corpora DIR] [--repeat N]`.

The floor is what any reader pays: reading every detection file from the opened archive and
loading its YAML (libyaml). Then our full parse: `load_context` (macros, data sources, lookups)
and `parse_file` (with `RuleRecord.finish()`) for every detection. The two steps of the SPL
work, macro expansion and the pipeline parse, are also timed alone. Figures are the best of N
runs, in seconds.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

import yaml
from timing import best_of

from kb.sources import Source
from loaders import splunk
from loaders.splunk_macros import expand
from loaders.splunk_spl import parse_spl

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
ARCHIVE = "splunk-security_content.tar.gz"
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def floor(source: Source, paths: list[str]) -> list[dict]:
    """Reading every detection and loading its YAML."""
    return [yaml.load(source.read_text(path), Loader=LOADER) for path in paths]


def full_parse(source: Source) -> Counter:
    context = splunk.load_context(source)
    statuses: Counter = Counter()
    for path in splunk.rule_paths(source):
        for record in splunk.parse_file(source.rule_file(path), context):
            statuses[(record.deprecated, record.parse_status)] += 1
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path,
                        default=Path(os.environ.get("KB_CORPORA", DEFAULT_CORPORA)))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    source = Source.open(args.corpora / ARCHIVE)
    paths = splunk.rule_paths(source)
    floor_seconds, docs = best_of(args.repeat, lambda: floor(source, paths))
    context = splunk.load_context(source)
    searches = [str(doc.get("search") or "") for doc in docs]  # type: ignore[union-attr]
    expand_seconds, expansions = best_of(
        args.repeat, lambda: [expand(search, context.macros) for search in searches])
    spl_seconds, _ = best_of(args.repeat, lambda: [
        parse_spl(item.text, item.unresolved, context.lookups)
        for item in expansions])  # type: ignore[union-attr]
    parse_seconds, statuses = best_of(args.repeat, lambda: full_parse(source))

    print(f"splunk: {len(paths)} detections, {len(context.macros)} macros")
    print(f"  floor (read + YAML load)   {floor_seconds:8.3f} s")
    print(f"  macro expansion alone      {expand_seconds:8.3f} s")
    print(f"  SPL parse alone            {spl_seconds:8.3f} s")
    print(f"  full parse                 {parse_seconds:8.3f} s"
          f"   ({parse_seconds / floor_seconds:.1f}x the floor)")
    for (deprecated, status), count in sorted(statuses.items()):  # type: ignore[union-attr]
        print(f"  {'deprecated' if deprecated else 'active':10} {status:9} {count:6}")


if __name__ == "__main__":
    main()
