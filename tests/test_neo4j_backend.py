"""The Neo4j backend against a real server (the harness `.ci/neo4j-start` runs), plus its
error messages, which need no server."""

from __future__ import annotations

import copy
import socket
from typing import Any

import pytest

from kb.errors import EngineError
from kb.graph.backend import GraphTables
from kb.graph.neo4j_backend import Neo4jBackend, schema_statements
from kb.graph.schema import NODE_BY_LABEL, NODES, RELS


def _rule(uid: str, title: str, **extra: Any) -> dict[str, Any]:
    vendor, native_id = uid.split(":", 1)
    return {"uid": uid, "vendor": vendor, "native_id": native_id, "title": title,
            "language": vendor, "path": f"rules/{native_id}.yml", "source": "test",
            "status": "stable", "deprecated": False, "severity": "high",
            "platforms": ["windows"], "domain": "endpoint", "parse_status": "full",
            "problem_count": 0, "properties": "{}", **extra}


def _filters(rule: str, field: str, op: str, negated: bool = False,
             exclusion: bool = False) -> dict[str, Any]:
    return {"_from": rule, "_to": field, "op": op, "negated": negated, "exclusion": exclusion,
            "raw_field": field}


def _uses(rule: str, field: str, op: str, value: str, negated: bool = False,
          exclusion: bool = False) -> dict[str, Any]:
    return {**_filters(rule, field, op, negated, exclusion), "_to": f"{field}|{value.lower()}",
            "raw_value": value}


def _value(field: str, value: str) -> dict[str, Any]:
    return {"key": f"{field}|{value.lower()}", "field": field, "value": value.lower()}


def small_tables() -> GraphTables:
    """Two techniques, a tactic, three rules of three vendors, their fields, values and events."""
    tables = GraphTables()
    tables.nodes["Technique"] = [
        {"id": "T1059", "name": "Command and Scripting Interpreter", "tactics": ["execution"],
         "platforms": ["windows", "linux"], "is_subtechnique": False, "parent": "",
         "deprecated": False, "revoked": False, "url": "https://attack.mitre.org/T1059"},
        {"id": "T1059.001", "name": "PowerShell", "tactics": ["execution"],
         "platforms": ["windows"], "is_subtechnique": True, "parent": "T1059",
         "deprecated": False, "revoked": False, "url": None},
    ]
    tables.nodes["Tactic"] = [
        {"id": "TA0002", "shortname": "execution", "name": "Execution", "matrix_order": 3}]
    tables.nodes["Rule"] = [
        _rule("sigma:a1", "Encoded PowerShell", platforms=["windows"]),
        _rule("elastic:b2", "Suspicious; \"quoted\" PowerShell", platforms=[]),
        _rule("splunk:c3", "Interpreter spawned", severity=None),
    ]
    tables.nodes["Field"] = [
        {"name": "Image", "mapped": False, "aliases": ["sigma:Image"]},
        {"name": "CommandLine", "mapped": False, "aliases": ["sigma:CommandLine",
                                                            "elastic:process.command_line"]},
    ]
    tables.nodes["Value"] = [
        _value("Image", "\\powershell.exe"), _value("CommandLine", "-enc"),
        _value("CommandLine", "-nop")]
    tables.nodes["EventType"] = [
        {"key": "sigma:windows/process_creation", "name": "windows/process_creation",
         "source": "sigma"}]
    tables.nodes["KbInfo"] = [{"key": "attack_version", "value": "18.1"}]
    tables.rels["SUBTECHNIQUE_OF"] = [{"_from": "T1059.001", "_to": "T1059"}]
    tables.rels["IN_TACTIC"] = [{"_from": "T1059", "_to": "TA0002"},
                                {"_from": "T1059.001", "_to": "TA0002"}]
    tables.rels["DETECTS"] = [{"_from": "sigma:a1", "_to": "T1059.001"},
                              {"_from": "elastic:b2", "_to": "T1059.001"},
                              {"_from": "splunk:c3", "_to": "T1059"}]
    tables.rels["FILTERS"] = [
        _filters("sigma:a1", "Image", "ends_with"),
        _filters("sigma:a1", "CommandLine", "contains"),
        _filters("sigma:a1", "CommandLine", "eq", negated=True, exclusion=True),
        _filters("elastic:b2", "CommandLine", "contains"),
        _filters("splunk:c3", "Image", "ends_with"),
    ]
    tables.rels["USES"] = [
        _uses("sigma:a1", "Image", "ends_with", "\\powershell.exe"),
        _uses("sigma:a1", "CommandLine", "contains", "-enc"),
        _uses("elastic:b2", "CommandLine", "contains", "-enc"),
        _uses("elastic:b2", "CommandLine", "contains", "-nop"),
        _uses("splunk:c3", "Image", "ends_with", "\\powershell.exe"),
    ]
    tables.rels["OF_FIELD"] = [{"_from": v["key"], "_to": v["field"]}
                               for v in tables.nodes["Value"]]
    tables.rels["OBSERVES"] = [{"_from": "sigma:a1", "_to": "sigma:windows/process_creation"}]
    return tables


def changed_tables() -> GraphTables:
    """The small tables with sigma:a1 rewritten (title, severity, platforms, techniques,
    predicates), splunk:c3 gone, the value no rule uses any more gone, and one new value."""
    tables = copy.deepcopy(small_tables())
    gone = "Image|\\powershell.exe"
    tables.nodes["Value"] = [v for v in tables.nodes["Value"] if v["key"] != gone]
    tables.rels["OF_FIELD"] = [r for r in tables.rels["OF_FIELD"] if r["_from"] != gone]
    tables.nodes["Rule"] = [
        _rule("sigma:a1", "Encoded PowerShell (v2)", platforms=["windows", "linux"],
              severity="critical"),
        tables.nodes["Rule"][1],
    ]
    tables.nodes["Value"].append(_value("CommandLine", "-w hidden"))
    tables.rels["OF_FIELD"].append({"_from": "CommandLine|-w hidden", "_to": "CommandLine"})
    tables.rels["DETECTS"] = [{"_from": "sigma:a1", "_to": "T1059"},
                              {"_from": "elastic:b2", "_to": "T1059.001"}]
    tables.rels["FILTERS"] = [
        _filters("sigma:a1", "CommandLine", "contains"),
        _filters("elastic:b2", "CommandLine", "contains"),
    ]
    tables.rels["USES"] = [
        _uses("sigma:a1", "CommandLine", "contains", "-w hidden"),
        _uses("elastic:b2", "CommandLine", "contains", "-enc"),
        _uses("elastic:b2", "CommandLine", "contains", "-nop"),
    ]
    tables.rels["OBSERVES"] = []
    return tables


def _frozen(props: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in props.items() if v is not None))


def expected_graph(tables: GraphTables) -> tuple[list, list]:
    """Nodes and relationships the tables describe, sorted, duplicates kept."""
    nodes = sorted((label, _frozen(row)) for label, rows in tables.nodes.items() for row in rows)
    rels = sorted(
        (rel_type, row["_from"], row["_to"],
         _frozen({k: v for k, v in row.items() if not k.startswith("_")}))
        for rel_type, rows in tables.rels.items() for row in rows)
    return nodes, rels


def stored_graph(backend: Neo4jBackend) -> tuple[list, list]:
    """Every node and relationship the server holds, in the same shape."""
    nodes = sorted((row["label"], _frozen(row["props"])) for row in backend.query(
        "MATCH (n) RETURN head(labels(n)) AS label, properties(n) AS props"))
    rels = []
    for rel in RELS:
        source_key = NODE_BY_LABEL[rel.source].key
        target_key = NODE_BY_LABEL[rel.target].key
        rows = backend.query(
            f"MATCH (a:{rel.source})-[r:{rel.type}]->(b:{rel.target}) "
            f"RETURN a.{source_key} AS f, b.{target_key} AS t, properties(r) AS p")
        rels += [(rel.type, row["f"], row["t"], _frozen(row["p"])) for row in rows]
    total = backend.query("MATCH ()-[r]->() RETURN count(r) AS n")[0]["n"]
    assert total == len(rels), "relationships of types or ends outside the schema"
    return nodes, sorted(rels)


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
