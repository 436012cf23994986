"""Golden results of the coverage and drill-down canned queries, on both engines (the
`golden_backend` fixture of tests/engines.py), over the golden graph's coverage extension
(tests/golden_graph.py, `coverage_tables`)."""

from __future__ import annotations

import pytest
from golden_graph import coverage_tables

from kb.queries import run_query

GOLDEN_TABLES = coverage_tables


@pytest.fixture
def golden(golden_backend):
    """The coverage graph on each engine in turn (tests/engines.py)."""
    return golden_backend


def _sorted_lists(rows):
    """Rows with every list sorted: engines collect in their own order."""
    return [{k: sorted(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows]


def test_coverage_techniques_lists_current_techniques_with_attack_detection_counts(golden):
    rows = _sorted_lists(run_query(golden, "coverage_techniques"))

    assert [(r["id"], r["tactic_ids"], r["strategies"], r["analytics"], r["data_components"])
            for r in rows] == [
        ("T1003", ["TA0006"], 0, 0, 0),
        ("T1003.001", ["TA0006"], 1, 1, 1),
        ("T1059", ["TA0002"], 0, 0, 0),
        ("T1059.001", ["TA0002"], 0, 0, 0),
        ("T1505", ["TA0003"], 0, 0, 0),
        ("T1505.003", ["TA0003"], 1, 1, 1),
        ("T1505.004", ["TA0003"], 0, 0, 0),
        ("T1556", ["TA0006"], 1, 2, 1),
        ("T1557", ["TA0006"], 0, 0, 0),
        ("T1558", ["TA0006"], 0, 0, 0),
    ]
    assert rows[1] == {"id": "T1003.001", "name": "LSASS Memory",
                       "tactics": ["credential-access"], "tactic_ids": ["TA0006"],
                       "platforms": ["Linux", "Windows", "macOS"], "is_subtechnique": True,
                       "parent": "T1003", "strategies": 1, "analytics": 1,
                       "data_components": 1}


def test_coverage_rules_gives_every_rule_with_techniques_and_event_types(golden):
    rows = _sorted_lists(run_query(golden, "coverage_rules"))

    assert [(r["uid"], r["status"], r["deprecated"], r["techniques"], r["event_types"])
            for r in rows] == [
        ("chronicle:r9", "deprecated", True, ["T1558"], ["chronicle:udm/USER_LOGIN"]),
        ("elastic:r2", "test", False, ["T1505.003", "T1505.004"],
         ["elastic:event.category/process"]),
        ("elastic:r7", "development", False, ["T1003.001"],
         ["elastic:index/logs-windows.sysmon_operational-*"]),
        ("sentinel:r8", "", False, ["T1505.003"], []),
        ("sigma:r1", "test", False, ["T1505.003"], ["sigma:windows/process_creation"]),
        ("sigma:r3", "test", True, ["T1505.004"], ["sigma:windows/process_creation"]),
        ("sigma:r5", "test", False, ["T1505"], ["sigma:linux/process_creation"]),
        ("splunk:r4", "test", False, ["T1059.001"], ["splunk:datamodel/Endpoint.Processes"]),
        ("splunk:r6", "experimental", False, ["T1003.001"],
         ["splunk:data_source/Sysmon EventID 10"]),
    ]


def test_coverage_rules_filters_by_vendor(golden):
    rows = run_query(golden, "coverage_rules", vendor="splunk")

    assert [r["uid"] for r in rows] == ["splunk:r4", "splunk:r6"]


def test_log_source_coverage_lists_components_no_rule_observes(golden):
    rows = _sorted_lists(run_query(golden, "log_source_coverage"))

    assert rows == [{"technique": "T1556", "name": "Modify Authentication Process",
                     "data_component": "DC0067", "component": "Logon Session Creation",
                     "log_sources": ["WinEventLog:Security:EventCode=4624",
                                     "auditd:USER_LOGIN"],
                     "analytics": 2, "rules": 0}]


def test_log_source_coverage_counts_observing_live_rules(golden):
    rows = run_query(golden, "log_source_coverage", unobserved_only=False)

    assert [(r["technique"], r["data_component"], r["rules"]) for r in rows] == [
        ("T1003.001", "DC0035", 1), ("T1505.003", "DC0032", 2), ("T1556", "DC0067", 0)]


@pytest.mark.parametrize(("params", "expected"), [
    ({"vendor": "splunk"}, [("T1505.003", "DC0032"), ("T1556", "DC0067")]),
    ({"vendor": "sigma", "technique": "T1505.003"}, []),
    ({"technique": "T1003.001", "unobserved_only": False}, [("T1003.001", "DC0035")]),
])
def test_log_source_coverage_filters(golden, params, expected):
    rows = run_query(golden, "log_source_coverage", **params)

    assert [(r["technique"], r["data_component"]) for r in rows] == expected


@pytest.mark.parametrize(("vendor", "other", "expected"), [
    ("sigma", "elastic", [("T1505.003", "beta", "eq", "y1", 1)]),
    ("elastic", "sigma", [("T1505.003", "delta", "eq", "v1", 1),
                          ("T1505.003", "delta", "eq", "v2", 1)]),
    ("splunk", "elastic", [("T1003.001", "alpha", "ends_with", "x1", 1),
                           ("T1003.001", "beta", "eq", "y1", 1)]),
    ("sigma", "splunk", []),
])
def test_compare_indicators_on_shared_techniques(golden, vendor, other, expected):
    rows = run_query(golden, "compare_indicators", vendor=vendor, other=other)

    assert [(r["technique"], r["field"], r["op"], r["value"], r["rules"])
            for r in rows] == expected


def test_field_drilldown(golden):
    rows = _sorted_lists(run_query(golden, "field_drilldown", field="alpha"))

    assert [(r["uid"], r["ops"], r["exclusions"], r["techniques"]) for r in rows] == [
        ("elastic:r2", ["ends_with"], 0, ["T1505.003", "T1505.004"]),
        ("sigma:r1", ["ends_with"], 0, ["T1505.003"]),
        ("sigma:r5", ["eq"], 0, ["T1505"]),
        ("splunk:r6", ["ends_with"], 0, ["T1003.001"]),
    ]
    assert rows[1] == {"uid": "sigma:r1", "title": "Rule r1", "vendor": "sigma",
                       "status": "test", "deprecated": False, "raw_fields": ["alpha"],
                       "ops": ["ends_with"], "exclusions": 0, "techniques": ["T1505.003"]}


def test_field_drilldown_counts_exclusions_and_takes_deprecated_when_told(golden):
    rows = run_query(golden, "field_drilldown", field="gamma", include_deprecated=True)
    deprecated = run_query(golden, "field_drilldown", field="alpha", include_deprecated=True)

    assert [(r["uid"], r["exclusions"]) for r in rows] == [("sigma:r1", 1), ("splunk:r4", 1)]
    assert "sigma:r3" in [r["uid"] for r in deprecated]


@pytest.mark.parametrize(("params", "uids"), [
    ({"field": "alpha", "op": "ends_with", "value": "x1"},
     ["elastic:r2", "sigma:r1", "splunk:r6"]),
    ({"field": "alpha", "op": "", "value": "x1"}, ["elastic:r2", "sigma:r1", "splunk:r6"]),
    ({"field": "alpha", "op": "ends_with", "value": "x1", "include_deprecated": True},
     ["elastic:r2", "sigma:r1", "sigma:r3", "splunk:r6"]),
    ({"field": "alpha", "op": "eq", "value": "x1"}, []),
    ({"field": "delta", "op": "eq", "value": "v1"}, ["elastic:r2", "elastic:r7"]),
])
def test_indicator_drilldown_rules(golden, params, uids):
    assert [r["uid"] for r in run_query(golden, "indicator_drilldown", **params)] == uids


def test_indicator_drilldown_row(golden):
    rows = _sorted_lists(run_query(golden, "indicator_drilldown", field="gamma",
                                   op="contains", value="z1"))

    assert rows == [
        {"uid": "sigma:r1", "title": "Rule r1", "vendor": "sigma", "status": "test",
         "deprecated": False, "ops": ["contains"], "negated": True, "exclusion": True,
         "raw_fields": ["gamma"], "raw_values": ["z1"], "reach": 0,
         "techniques": ["T1505.003"]},
        {"uid": "splunk:r4", "title": "Rule r4", "vendor": "splunk", "status": "test",
         "deprecated": False, "ops": ["contains"], "negated": True, "exclusion": True,
         "raw_fields": ["gamma"], "raw_values": ["z1"], "reach": 0,
         "techniques": ["T1059.001"]},
    ]


@pytest.mark.parametrize(("params", "expected"), [
    ({"event_type": "sigma:windows/process_creation"}, [("sigma:r1", ["T1505.003"])]),
    ({"event_type": "sigma:windows/process_creation", "include_deprecated": True},
     [("sigma:r1", ["T1505.003"]), ("sigma:r3", ["T1505.004"])]),
    ({"event_type": "splunk:data_source/Sysmon EventID 10"}, [("splunk:r6", ["T1003.001"])]),
    ({"event_type": "chronicle:udm/USER_LOGIN"}, []),
])
def test_event_type_drilldown(golden, params, expected):
    rows = _sorted_lists(run_query(golden, "event_type_drilldown", **params))

    assert [(r["uid"], r["techniques"]) for r in rows] == expected


def test_rule_neighbours_ranks_by_shared_then_fewest_indicators(golden):
    rows = run_query(golden, "rule_neighbours", uid="sigma:r1")

    assert rows == [
        {"uid": "splunk:r4", "title": "Rule r4", "vendor": "splunk", "shared": 2,
         "indicators": 2},
        {"uid": "splunk:r6", "title": "Rule r6", "vendor": "splunk", "shared": 2,
         "indicators": 2},
        {"uid": "sentinel:r8", "title": "Rule r8", "vendor": "sentinel", "shared": 1,
         "indicators": 1},
        {"uid": "elastic:r2", "title": "Rule r2", "vendor": "elastic", "shared": 1,
         "indicators": 3},
    ]


def test_rule_neighbours_limit_and_deprecated(golden):
    limited = run_query(golden, "rule_neighbours", uid="sigma:r1", limit=2)
    with_deprecated = run_query(golden, "rule_neighbours", uid="elastic:r7",
                                include_deprecated=True)

    assert [r["uid"] for r in limited] == ["splunk:r4", "splunk:r6"]
    assert [(r["uid"], r["shared"]) for r in with_deprecated] == [("elastic:r2", 1)]


def test_coverage_tactics_in_matrix_order(golden):
    rows = run_query(golden, "coverage_tactics")

    assert [(r["id"], r["shortname"], r["name"]) for r in rows] == [
        ("TA0002", "execution", "Execution"), ("TA0003", "persistence", "Persistence"),
        ("TA0006", "credential-access", "Credential Access")]
