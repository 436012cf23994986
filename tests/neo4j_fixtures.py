"""Fixtures for tests that need a real Neo4j (the test server `.ci/neo4j-start` runs), and a
small hand-made knowledge base to load into it.

The server is named by KB_TEST_NEO4J_URI (with KB_TEST_NEO4J_USER, KB_TEST_NEO4J_PASSWORD).
Without it the tests are skipped with the reason shown, except under CI=true, where a missing
server is a failure: CI must never pass by skipping the engine.

Use: `from neo4j_fixtures import neo4j_backend, neo4j_server  # noqa: F401` in a conftest or a
test module, then ask for `neo4j_backend` (a clean graph per test module).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from kb.graph.backend import GraphTables
from kb.graph.neo4j_backend import Neo4jBackend
from kb.graph.schema import NODE_BY_LABEL, RELS


def neo4j_test_settings() -> tuple[str, str, str] | None:
    """The test server's URI, user and password, or None when no server is configured."""
    uri = os.environ.get("KB_TEST_NEO4J_URI", "")
    if not uri:
        return None
    return (uri, os.environ.get("KB_TEST_NEO4J_USER", "neo4j"),
            os.environ.get("KB_TEST_NEO4J_PASSWORD", "kb-test-password"))


@cache
def _shared_backend(uri: str, user: str, password: str) -> Neo4jBackend:
    """One connection per session, even when two modules import these fixtures."""
    return Neo4jBackend(uri, user, password)


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[Neo4jBackend]:
    """A backend on the test server, for the whole session."""
    settings = neo4j_test_settings()
    if settings is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but KB_TEST_NEO4J_URI is not set: .ci/run must start the test "
                        "server (eval \"$(.ci/neo4j-start)\")")
        pytest.skip("no Neo4j test server: run eval \"$(.ci/neo4j-start)\" to set "
                    "KB_TEST_NEO4J_URI (see docs/neo4j.md)")
    backend = _shared_backend(*settings)
    yield backend
    backend.close()
    _shared_backend.cache_clear()


@pytest.fixture(scope="module")
def neo4j_backend(neo4j_server: Neo4jBackend) -> Neo4jBackend:
    """The session's backend on an empty graph: wiped before each test module."""
    neo4j_server.wipe()
    return neo4j_server


# -- a small knowledge base, written by hand following kb.graph.schema ------------------------

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
         "deprecated": False, "revoked": False, "replaced_by": "",
         "url": "https://attack.mitre.org/T1059"},
        {"id": "T1059.001", "name": "PowerShell", "tactics": ["execution"],
         "platforms": ["windows"], "is_subtechnique": True, "parent": "T1059",
         "deprecated": False, "revoked": False, "replaced_by": "", "url": None},
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
