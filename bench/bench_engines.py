"""Benchmark of the two engines on the same input: the Sigma snapshot with ATT&CK.

Run by hand, against a Neo4j you can wipe (the test server is fine):

    eval "$(.ci/neo4j-start)"
    KB_NEO4J_PASSWORD=$KB_TEST_NEO4J_PASSWORD \
        python bench/bench_engines.py --neo4j "$KB_TEST_NEO4J_URI" [--corpora ../shared/corpora]

The build runs once (parse, settle, normalise, graph tables); the same tables are then loaded
  (a) into a new LadybugDB file, then again into it (a rebuild with nothing changed);
  (b) into the Neo4j database, emptied first, through the driver (UNWIND batches), then again
      (the diff-based load writes nothing);
  (c) as neo4j-admin import files (the bulk path's writing side; the importer itself needs the
      server stopped and is not timed here).
Then the authoring guide (`kb.queries.guide`, seven canned queries) runs on both engines for
the 20 techniques with the most rules, after one warm-up pass: median and slowest.
THE NEO4J DATABASE NAMED IS WIPED.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from kb.build import build
from kb.graph.backend import GraphTables
from kb.graph.ladybug_backend import LadybugBackend
from kb.graph.neo4j_backend import Neo4jBackend
from kb.graph.neo4j_import import export_neo4j_import
from kb.queries import guide

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
TECHNIQUES = 20


class Keep:
    """A backend that keeps the tables a build hands it."""

    name = "keep"

    def __init__(self) -> None:
        self.tables = GraphTables()

    def load(self, tables: GraphTables) -> None:
        self.tables = tables

    def query(self, text, params=None):
        return []

    def close(self) -> None:
        pass


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def busiest(backend) -> list[str]:
    rows = backend.query(
        "MATCH (r:Rule)-[:DETECTS]->(t:Technique) WHERE r.deprecated = false "
        f"RETURN t.id AS id, count(*) AS rules ORDER BY rules DESC, id LIMIT {TECHNIQUES}")
    return [row["id"] for row in rows]


def guide_latencies(backend, techniques: list[str]) -> list[float]:
    for technique in techniques:  # warm-up: plans compiled, pages cached
        guide(backend, technique)
    return [timed(guide, backend, technique)[0] for technique in techniques]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--neo4j", default=os.environ.get("KB_NEO4J_URI", ""),
                        help="Bolt URI of a Neo4j to wipe and load (default: $KB_NEO4J_URI)")
    args = parser.parse_args()
    if not args.neo4j:
        parser.error("name a Neo4j to wipe with --neo4j URI (or KB_NEO4J_URI)")
    archive = args.corpora / "sigmahq-sigma.tar.gz"
    bundle = args.corpora / "mitre-attack-enterprise-18.1-stix21.json.gz"
    figures: dict[str, float] = {}

    with tempfile.TemporaryDirectory() as scratch:
        os.environ["KB_CACHE_DIR"] = str(Path(scratch) / "cache")
        keep = Keep()
        figures["build_to_tables_s"] = timed(build, [archive], bundle, keep)[0]
        tables = keep.tables
        figures["nodes"] = sum(len(rows) for rows in tables.nodes.values())
        figures["relationships"] = sum(len(rows) for rows in tables.rels.values())

        ladybug = LadybugBackend(Path(scratch) / "kb.lbug")
        figures["ladybug_load_s"] = timed(ladybug.load, tables)[0]
        figures["ladybug_reload_s"] = timed(ladybug.load, tables)[0]

        neo4j = Neo4jBackend(args.neo4j)
        neo4j.wipe()
        figures["neo4j_load_s"] = timed(neo4j.load, tables)[0]
        figures["neo4j_reload_s"] = timed(neo4j.load, tables)[0]
        figures["neo4j_import_files_s"] = timed(
            export_neo4j_import, tables, Path(scratch) / "import")[0]

        techniques = busiest(ladybug)
        for name, backend in (("ladybug", ladybug), ("neo4j", neo4j)):
            latencies = guide_latencies(backend, techniques)
            figures[f"{name}_guide_median_ms"] = statistics.median(latencies) * 1000
            figures[f"{name}_guide_max_ms"] = max(latencies) * 1000
        ladybug.close()
        neo4j.close()

    figures["neo4j_vs_ladybug_load"] = figures["neo4j_load_s"] / figures["ladybug_load_s"]
    figures["neo4j_vs_ladybug_guide"] = (figures["neo4j_guide_median_ms"]
                                         / figures["ladybug_guide_median_ms"])
    for name, value in figures.items():
        print(f"{name:28} {value:12.2f}")


if __name__ == "__main__":
    main()
