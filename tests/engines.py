"""Golden tests on both engines: the `golden_backend` fixture.

A test module that asks for `golden_backend` runs each of its tests twice, as `[ladybug]` on a
fresh LadybugDB file and as `[neo4j]` on the Neo4j test server (marked `neo4j`: skipped with
the reason shown when no server is configured, a failure under CI=true; see
tests/neo4j_fixtures.py). Both engines hold the same small graph: the tables the module names
in `GOLDEN_TABLES` (a function returning `GraphTables`), by default `golden_graph.golden_tables`.

    from golden_graph import coverage_tables
    GOLDEN_TABLES = coverage_tables

    def test_something(golden_backend):
        assert run_query(golden_backend, "coverage_rules") == [...]

The graph is loaded once per module and engine. The Neo4j test server holds one graph at a
time: a module that also asks for `neo4j_backend` directly gets the same database.

`normalised(rows)` removes what the engines may answer differently and kb does not promise
(the order inside collected lists, whole numbers typed as floats), for tests that compare the
engines with each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from golden_graph import golden_tables

from kb.graph.backend import Backend
from kb.graph.ladybug_backend import LadybugBackend

ENGINES = ["ladybug", pytest.param("neo4j", marks=pytest.mark.neo4j)]


@pytest.fixture(scope="module", params=ENGINES)
def golden_backend(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The module's golden graph on each engine in turn."""
    tables = getattr(request.module, "GOLDEN_TABLES", golden_tables)()
    if request.param == "neo4j":
        backend = request.getfixturevalue("neo4j_backend")
        backend.load(tables)
        yield backend
        return
    backend = LadybugBackend(tmp_path_factory.mktemp("golden") / "golden.lbug")
    backend.load(tables)
    yield backend
    backend.close()


def normalised(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows, in their order, with the differences engines may show and kb does not promise
    removed: whole numbers as int, lists (collected in each engine's own order) sorted."""
    return [{key: _normalised(value) for key, value in row.items()} for row in rows]


def _normalised(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return sorted((_normalised(item) for item in value), key=repr)
    if isinstance(value, dict):
        return {key: _normalised(item) for key, item in value.items()}
    return value
