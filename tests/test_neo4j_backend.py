"""The Neo4j backend against a real server (the harness `.ci/neo4j-start` runs), plus its
error messages, which need no server."""

from __future__ import annotations

import copy
import socket

import pytest
from neo4j_fixtures import changed_tables, expected_graph, small_tables, stored_graph

from kb.errors import EngineError
from kb.graph.neo4j_backend import Neo4jBackend, schema_statements
from kb.graph.schema import NODES


@pytest.mark.neo4j
def test_neo4j_backend_load_holds_exactly_the_tables(neo4j_backend: Neo4jBackend) -> None:
    tables = small_tables()

    neo4j_backend.load(tables)

    assert stored_graph(neo4j_backend) == expected_graph(tables)


@pytest.mark.neo4j
def test_neo4j_backend_load_twice_gives_no_duplicates(neo4j_backend: Neo4jBackend) -> None:
    tables = small_tables()

    neo4j_backend.load(tables)
    neo4j_backend.load(copy.deepcopy(tables))

    assert stored_graph(neo4j_backend) == expected_graph(tables)


@pytest.mark.neo4j
def test_neo4j_backend_reload_updates_changed_and_removes_gone(
        neo4j_backend: Neo4jBackend) -> None:
    neo4j_backend.load(small_tables())
    tables = changed_tables()

    neo4j_backend.load(tables)

    assert stored_graph(neo4j_backend) == expected_graph(tables)
    assert neo4j_backend.query(
        "MATCH (r:Rule {uid: $uid}) RETURN r.title AS title, r.severity AS severity, "
        "r.platforms AS platforms", {"uid": "sigma:a1"}) == [
        {"title": "Encoded PowerShell (v2)", "severity": "critical",
         "platforms": ["windows", "linux"]}]
    assert neo4j_backend.query("MATCH (r:Rule {uid: 'splunk:c3'}) RETURN r") == []


@pytest.mark.neo4j
def test_neo4j_backend_reload_restores_a_tampered_graph(neo4j_backend: Neo4jBackend) -> None:
    tables = small_tables()
    neo4j_backend.load(tables)
    neo4j_backend.query("MATCH (r:Rule {uid: 'sigma:a1'})-[f:FILTERS {op: 'eq'}]->() DELETE f")
    neo4j_backend.query("MATCH (r:Rule {uid: 'elastic:b2'}) SET r.title = 'edited', r.extra = 1")
    neo4j_backend.query("CREATE (:Field {name: 'Stray'})")

    neo4j_backend.load(tables)

    assert stored_graph(neo4j_backend) == expected_graph(tables)


@pytest.mark.neo4j
def test_neo4j_backend_query_returns_plain_values(neo4j_backend: Neo4jBackend) -> None:
    neo4j_backend.load(small_tables())

    rows = neo4j_backend.query(
        "MATCH (t:Technique {id: $id}) "
        "RETURN t.id AS id, t.tactics AS tactics, t.is_subtechnique AS sub, "
        "COUNT { MATCH (r:Rule)-[:DETECTS]->(t) } AS rules, [x IN [1, 2] | x * $k] AS doubled, "
        "{name: t.name} AS info", {"id": "T1059.001", "k": 2})

    assert rows == [{"id": "T1059.001", "tactics": ["execution"], "sub": True, "rules": 2,
                     "doubled": [2, 4], "info": {"name": "PowerShell"}}]
    assert type(rows[0]["rules"]) is int


@pytest.mark.neo4j
def test_neo4j_backend_creates_a_key_constraint_per_label(neo4j_backend: Neo4jBackend) -> None:
    neo4j_backend.ensure_schema()

    rows = neo4j_backend.query(
        "SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type "
        "WHERE type = 'UNIQUENESS' RETURN labelsOrTypes[0] AS label, properties[0] AS key")

    assert {(row["label"], row["key"]) for row in rows} >= {(n.label, n.key) for n in NODES}


@pytest.mark.neo4j
def test_neo4j_backend_bad_query_raises_engine_error(neo4j_backend: Neo4jBackend) -> None:
    with pytest.raises(EngineError, match=r"^query failed: Neo\.ClientError\.Statement\.Syntax"):
        neo4j_backend.query("MATCH (n RETURN n")


@pytest.mark.neo4j
def test_neo4j_backend_bad_credentials_raise_one_line_engine_error(
        neo4j_server: Neo4jBackend) -> None:
    # An unknown user, so that the failed attempt locks nobody out.
    with pytest.raises(EngineError) as raised:
        Neo4jBackend(neo4j_server.uri, "kb-nobody", "wrong-password")

    message = str(raised.value)
    assert "\n" not in message
    assert message == (f"{neo4j_server.uri}: Neo4j refused the credentials of user 'kb-nobody' "
                       "(set KB_NEO4J_USER and KB_NEO4J_PASSWORD)")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_neo4j_backend_unreachable_server_raises_one_line_engine_error() -> None:
    uri = f"bolt://127.0.0.1:{_closed_port()}"

    with pytest.raises(EngineError) as raised:
        Neo4jBackend(uri, "neo4j", "any", connection_timeout=5)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{uri}: cannot reach Neo4j (")
    assert "refused" in message.lower()


@pytest.mark.parametrize("uri", ["http://127.0.0.1:7474", "localhost:7687", "bolt://"])
def test_neo4j_backend_bad_uri_raises_engine_error(uri: str) -> None:
    with pytest.raises(EngineError, match=f"^{uri}: not a usable Neo4j URI"):
        Neo4jBackend(uri, "neo4j", "any")


def test_neo4j_backend_reads_credentials_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"bolt://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("KB_NEO4J_URI", uri)
    monkeypatch.setenv("KB_NEO4J_USER", "someone")

    with pytest.raises(EngineError, match=f"^{uri}: cannot reach Neo4j"):
        Neo4jBackend(connection_timeout=5)


def test_neo4j_schema_statements_cover_every_label_key_once() -> None:
    statements = schema_statements()

    constraints = [s for s in statements if s.startswith("CREATE CONSTRAINT")]
    assert len(constraints) == len(NODES)
    assert all("IF NOT EXISTS" in s for s in statements)
    assert ("CREATE CONSTRAINT kb_rule_uid IF NOT EXISTS FOR (n:Rule) REQUIRE n.uid IS UNIQUE"
            in constraints)
