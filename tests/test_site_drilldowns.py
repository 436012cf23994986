"""The site answers the guide and every drill-down from a few batch queries
(kb.site.drilldowns); here those answers are held equal to the canned queries' own, for every
technique, field, event type, indicator and rule of the golden graph, on both engines, and to
answers worked out by hand."""

import pytest
from engines import normalised
from golden_graph import coverage_tables

from kb.queries import guide, run_query
from kb.site import drilldowns
from kb.site.data import load_site_data

GOLDEN_TABLES = coverage_tables


@pytest.fixture(scope="module")
def golden(golden_backend):
    return golden_backend


@pytest.fixture(scope="module")
def data(golden):
    return load_site_data(golden)


def _guide_dict(result):
    """A guide as a dict, each rule's collected techniques sorted."""
    value = result.as_dict()
    for rows in value["rules_by_vendor"].values():
        for row in rows:
            row["techniques"] = sorted(row["techniques"])
    return value


def test_site_technique_guide_is_kb_guide_for_every_technique(golden, data):
    for technique in data.techniques:
        for limit in (25, 1):
            expected = _guide_dict(guide(golden, technique, limit=limit))

            assert _guide_dict(drilldowns.technique_guide(data, technique, limit)) == expected


def test_site_technique_guide_t1505_by_hand(data):
    result = drilldowns.technique_guide(data, "T1505")

    assert result.technique["rules"] == 4  # r1, r2, r5, r8; r3 is deprecated
    assert {v: [r["uid"] for r in rows] for v, rows in result.rules_by_vendor.items()} == {
        "elastic": ["elastic:r2"], "sentinel": ["sentinel:r8"],
        "sigma": ["sigma:r1", "sigma:r5"]}
    assert result.exclusions == [{"field": "gamma", "op": "contains", "value": "z1", "rules": 1}]
    assert result.indicators[0] == {"field": "beta", "op": "eq", "value": "y1", "rules": 2,
                                    "reach": 4}


def test_site_guide_page_knows_each_sample_value_op(data):
    page = drilldowns.guide_page(data, "T1505")

    assert page.sample_ops == {("alpha", "x1"): "ends_with", ("alpha", "x9"): "eq",
                               ("beta", "y1"): "eq", ("delta", "v1"): "eq",
                               ("delta", "v2"): "eq", ("epsilon", "w1"): "eq",
                               ("gamma", "z1"): "contains"}


def test_site_field_drilldowns_are_field_drilldown_for_every_field(golden, data):
    answers = drilldowns.field_drilldowns(data)

    assert set(answers) == set(data.fields)
    for name, rows in answers.items():
        assert normalised(rows) == normalised(run_query(golden, "field_drilldown", field=name))


def test_site_field_drilldown_gamma_by_hand(data):
    rows = drilldowns.field_drilldowns(data)["gamma"]

    assert [(r["uid"], r["ops"], r["exclusions"], r["techniques"]) for r in rows] == [
        ("sigma:r1", ["contains"], 1, ["T1505.003"]),
        ("splunk:r4", ["contains"], 1, ["T1059.001"])]


def test_site_event_type_drilldowns_are_the_query_for_every_event_type(golden, data):
    answers = drilldowns.event_type_drilldowns(data)

    assert set(answers) == set(data.event_types)
    for key, rows in answers.items():
        expected = run_query(golden, "event_type_drilldown", event_type=key)
        assert normalised(rows) == normalised(expected), key
    assert [r["uid"] for r in answers["sigma:windows/process_creation"]] == ["sigma:r1"]


def test_site_indicator_drilldowns_are_the_query_for_every_indicator(golden, data):
    index = drilldowns.IndicatorIndex(data)
    indicators = {(r["field"], r["op"], r["value"]) for rows in data.predicates.values()
                  for r in rows}

    assert len(indicators) == 7
    for indicator in sorted(indicators):
        field, op, value = indicator
        expected = run_query(golden, "indicator_drilldown", field=field, op=op, value=value)
        assert normalised(index.drilldown(indicator)) == normalised(expected), indicator
    assert index.rules(("alpha", "ends_with", "x1")) == {"sigma:r1", "elastic:r2", "splunk:r6"}


def test_site_rule_neighbours_are_the_query_for_every_rule(golden, data):
    answers = drilldowns.rule_neighbours(data, limit=10)

    for uid, rows in answers.items():
        assert rows == run_query(golden, "rule_neighbours", uid=uid, limit=10), uid


def test_site_rule_neighbours_of_r1_by_hand(data):
    rows = drilldowns.rule_neighbours(data)["sigma:r1"]

    # r4 shares beta and the negated gamma, r6 alpha and beta; r8 beta, r2 alpha; r3 and r9
    # are deprecated. Ties go to the rule with fewer indicators of its own, then by uid.
    assert [(r["uid"], r["shared"], r["indicators"]) for r in rows] == [
        ("splunk:r4", 2, 2), ("splunk:r6", 2, 2), ("sentinel:r8", 1, 1), ("elastic:r2", 1, 3)]
