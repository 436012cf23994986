"""Golden results of the site's batch queries (cypher/site_*.cypher) on the golden graph with
its coverage extension (tests/golden_graph.py), on both engines (tests/engines.py).

Each batch query answers for every technique, rule, event type or field at once what a canned
query answers for one: the tests hold them to those queries as well as to hand-known rows.
"""

import json

import pytest
from engines import normalised
from golden_graph import coverage_tables

from kb.queries import run_query

GOLDEN_TABLES = coverage_tables
UIDS = ["chronicle:r9", "elastic:r2", "elastic:r7", "sentinel:r8", "sigma:r1", "sigma:r3",
        "sigma:r5", "splunk:r4", "splunk:r6"]


@pytest.fixture(scope="module")
def golden(golden_backend):
    return golden_backend


def test_site_tactics_in_matrix_order(golden):
    rows = run_query(golden, "site_tactics")

    assert [(r["id"], r["shortname"], r["matrix_order"]) for r in rows] == [
        ("TA0002", "execution", 0), ("TA0003", "persistence", 1),
        ("TA0006", "credential-access", 2)]


def test_site_techniques_every_technique_with_its_parent(golden):
    rows = run_query(golden, "site_techniques")

    assert [(r["id"], r["parent"], r["is_subtechnique"], r["revoked"]) for r in rows] == [
        ("T1003", "", False, False), ("T1003.001", "T1003", True, False),
        ("T1059", "", False, False), ("T1059.001", "T1059", True, False),
        ("T1086", "", False, True), ("T1505", "", False, False),
        ("T1505.003", "T1505", True, False), ("T1505.004", "T1505", True, False),
        ("T1556", "", False, False), ("T1557", "", False, False), ("T1558", "", False, False)]
    assert rows[5]["name"] == "Server Software Component"
    assert rows[5]["tactics"] == ["persistence"]


def test_site_techniques_columns_are_the_technique_query_facts(golden):
    [row] = [r for r in run_query(golden, "site_techniques") if r["id"] == "T1505.003"]
    [single] = run_query(golden, "technique", technique="T1505.003")

    assert row == {key: single[key] for key in row}


def test_site_rules_every_rule_with_techniques_and_events(golden):
    rows = run_query(golden, "site_rules")

    assert [(r["uid"], sorted(r["techniques"]), r["event_types"], r["deprecated"])
            for r in rows] == [
        ("chronicle:r9", ["T1558"], ["chronicle:udm/USER_LOGIN"], True),
        ("elastic:r2", ["T1505.003", "T1505.004"], ["elastic:event.category/process"], False),
        ("elastic:r7", ["T1003.001"], ["elastic:index/logs-windows.sysmon_operational-*"],
         False),
        ("sentinel:r8", ["T1505.003"], [], False),
        ("sigma:r1", ["T1505.003"], ["sigma:windows/process_creation"], False),
        ("sigma:r3", ["T1505.004"], ["sigma:windows/process_creation"], True),
        ("sigma:r5", ["T1505"], ["sigma:linux/process_creation"], False),
        ("splunk:r4", ["T1059.001"], ["splunk:datamodel/Endpoint.Processes"], False),
        ("splunk:r6", ["T1003.001"], ["splunk:data_source/Sysmon EventID 10"], False),
    ]


def test_site_rules_rows_are_the_rule_query_rows(golden):
    rows = run_query(golden, "site_rules")

    assert normalised(rows) == normalised(
        [run_query(golden, "rule", uid=uid)[0] for uid in UIDS])


def test_site_rules_keep_each_rule_text_and_condition_tree(golden):
    rows = {row["uid"]: row for row in run_query(golden, "site_rules")}

    assert rows["sigma:r1"]["text"] == "title: Rule r1\ncondition: <r1>\n"
    assert rows["sentinel:r8"]["text"] == ""  # the coverage rules keep no text
    assert json.loads(rows["sigma:r1"]["condition"]) == {"and": [
        _pred("alpha", "ends_with", "x1"), _pred("beta", "eq", "y1"),
        {"not": _pred("gamma", "contains", "z1")}]}
    assert json.loads(rows["sigma:r5"]["condition"]) == {"or": [
        _pred("epsilon", "eq", "w1"), {"not": _pred("alpha", "eq", "x9")}]}
    assert json.loads(rows["elastic:r7"]["condition"]) == _pred("delta", "eq", "v1")


def _pred(field, op, *values):
    return {"pred": {"field": field, "op": op, "values": list(values), "negated": False,
                     "computed": False}}


def test_site_predicates_rows_with_reach(golden):
    rows = run_query(golden, "site_predicates")
    of_r1 = [r for r in rows if r["uid"] == "sigma:r1"]

    assert [(r["field"], r["op"], r["value"], r["negated"], r["exclusion"], r["reach"])
            for r in of_r1] == [
        ("alpha", "ends_with", "x1", False, False, 3),  # r1, r2, r6; r3 is deprecated
        ("beta", "eq", "y1", False, False, 4),  # r1, r4, r6, r8; r9 is deprecated
        ("gamma", "contains", "z1", True, True, 0),  # negated: no reach
    ]
    assert len(rows) == 16


def test_site_predicates_rows_are_the_rule_predicates_rows(golden):
    rows = run_query(golden, "site_predicates")

    for uid in UIDS:
        mine = [{k: v for k, v in r.items() if k not in ("uid", "reach")}
                for r in rows if r["uid"] == uid]
        assert mine == run_query(golden, "rule_predicates", uid=uid), uid


def test_site_event_types(golden):
    rows = run_query(golden, "site_event_types")

    assert [r["event_type"] for r in rows] == [
        "chronicle:udm/USER_LOGIN", "elastic:event.category/process",
        "elastic:index/logs-windows.sysmon_operational-*", "sigma:linux/process_creation",
        "sigma:windows/process_creation", "splunk:data_source/Sysmon EventID 10",
        "splunk:datamodel/Endpoint.Processes"]
    assert rows[1] == {"event_type": "elastic:event.category/process",
                       "name": "event.category/process", "source": "elastic"}


def test_site_fields_with_vendor_aliases(golden):
    rows = run_query(golden, "site_fields")

    assert normalised(rows) == [
        {"field": "alpha", "mapped": False,
         "aliases": ["elastic:alpha", "sigma:alpha", "splunk:alpha"]},
        {"field": "beta", "mapped": False,
         "aliases": ["chronicle:beta", "sentinel:beta", "sigma:beta", "splunk:beta"]},
        {"field": "delta", "mapped": False, "aliases": ["elastic:delta"]},
        {"field": "epsilon", "mapped": False, "aliases": ["sigma:epsilon"]},
        {"field": "gamma", "mapped": False, "aliases": ["sigma:gamma", "splunk:gamma"]},
    ]
