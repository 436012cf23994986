"""Golden results of every canned query on a small graph whose answers are known by hand, on
both engines (tests/engines.py)."""

import pytest

from kb.errors import UserError
from kb.queries import canned_queries, guide, parse_params_line, run_query

T1505 = {"technique": "T1505"}


@pytest.fixture(scope="module")
def golden(golden_backend):
    """The golden graph (tests/golden_graph.py) on LadybugDB, then on Neo4j."""
    return golden_backend


def test_canned_queries_all_have_summaries_and_params_lines():
    queries = canned_queries()

    assert set(queries) >= {"technique", "guide_events", "guide_fields", "guide_indicators",
                            "guide_exclusions", "guide_rules", "rule", "rule_predicates",
                            "stats", "kb_info"}
    assert all(q.summary and "// :params {" in q.text for q in queries.values())


def test_parse_params_line_reads_cypher_map_literals():
    text = "// :params {technique: 'T1505', include: true, limit: 25, quote: 'it\\'s'}\n"

    assert parse_params_line(text) == {"technique": "T1505", "include": True, "limit": 25,
                                       "quote": "it's"}


def test_technique_counts_rules_of_subtechniques_without_deprecated(golden):
    [row] = run_query(golden, "technique", **T1505)

    assert (row["id"], row["name"], row["subtechniques"], row["rules"]) == (
        "T1505", "Server Software Component", 2, 3)


def test_technique_counts_only_its_own_rules_when_told(golden):
    [row] = run_query(golden, "technique", **T1505, include_subtechniques=False)

    assert row["rules"] == 1


def test_guide_events(golden):
    assert run_query(golden, "guide_events", **T1505) == [
        {"event_type": "elastic:event.category/process", "name": "event.category/process",
         "source": "elastic", "rules": 1},
        {"event_type": "sigma:linux/process_creation", "name": "linux/process_creation",
         "source": "sigma", "rules": 1},
        {"event_type": "sigma:windows/process_creation", "name": "windows/process_creation",
         "source": "sigma", "rules": 1},
    ]


def test_guide_fields(golden):
    rows = run_query(golden, "guide_fields", **T1505)

    assert [(r["field"], r["rules"], r["op"], r["op_rules"], sorted(r["sample_values"]))
            for r in rows] == [
        ("alpha", 3, "ends_with", 2, ["x1"]),
        ("alpha", 3, "eq", 1, ["x9"]),
        ("beta", 1, "eq", 1, ["y1"]),
        ("delta", 1, "eq", 1, ["v1", "v2"]),
        ("epsilon", 1, "eq", 1, ["w1"]),
        ("gamma", 1, "contains", 1, ["z1"]),
    ]


def test_guide_fields_limit_counts_fields_not_rows(golden):
    rows = run_query(golden, "guide_fields", **T1505, limit=1)

    assert {r["field"] for r in rows} == {"alpha"}


def test_guide_indicators_with_corpus_reach(golden):
    assert run_query(golden, "guide_indicators", **T1505) == [
        {"field": "alpha", "op": "ends_with", "value": "x1", "rules": 2, "reach": 2},
        {"field": "beta", "op": "eq", "value": "y1", "rules": 1, "reach": 2},
        {"field": "delta", "op": "eq", "value": "v1", "rules": 1, "reach": 1},
        {"field": "delta", "op": "eq", "value": "v2", "rules": 1, "reach": 1},
        {"field": "epsilon", "op": "eq", "value": "w1", "rules": 1, "reach": 1},
    ]


def test_guide_exclusions_only_top_level_not(golden):
    assert run_query(golden, "guide_exclusions", **T1505) == [
        {"field": "gamma", "op": "contains", "value": "z1", "rules": 1}]


def test_technique_names_the_replacement_of_a_revoked_one(golden):
    [row] = run_query(golden, "technique", technique="T1086")

    assert (row["revoked"], row["replaced_by"], row["rules"]) == (True, "T1059.001", 0)


def test_guide_rules_grouped_by_vendor(golden):
    rows = run_query(golden, "guide_rules", **T1505)

    assert [(r["vendor"], r["uid"], sorted(r["techniques"])) for r in rows] == [
        ("elastic", "elastic:r2", ["T1505.003", "T1505.004"]),
        ("sigma", "sigma:r1", ["T1505.003"]),
        ("sigma", "sigma:r5", ["T1505"]),
    ]


@pytest.mark.parametrize(("filters", "uids"), [
    ({"platform": "linux"}, ["sigma:r5"]),
    ({"vendor": "elastic"}, ["elastic:r2"]),
    ({"domain": "cloud"}, []),
    ({"domain": "endpoint"}, ["elastic:r2", "sigma:r1", "sigma:r5"]),
    ({"include_deprecated": True}, ["elastic:r2", "sigma:r1", "sigma:r3", "sigma:r5"]),
    ({"include_subtechniques": False}, ["sigma:r5"]),
])
def test_guide_rules_filters(golden, filters, uids):
    assert [r["uid"] for r in run_query(golden, "guide_rules", **T1505, **filters)] == uids


def test_rule_follows_revoked_technique_to_its_replacement(golden):
    [row] = run_query(golden, "rule", uid="splunk:r4")

    assert row["techniques"] == ["T1059.001"]
    assert row["event_types"] == ["splunk:datamodel/Endpoint.Processes"]
    assert (row["vendor"], row["parse_status"], row["platforms"]) == ("splunk", "full", ["linux"])


def test_rule_predicates(golden):
    rows = run_query(golden, "rule_predicates", uid="sigma:r1")

    assert [(r["field"], r["op"], r["value"], r["negated"], r["exclusion"]) for r in rows] == [
        ("alpha", "ends_with", "x1", False, False),
        ("beta", "eq", "y1", False, False),
        ("gamma", "contains", "z1", True, True),
    ]


def test_stats(golden):
    assert run_query(golden, "stats") == [
        {"vendor": "elastic", "rules": 1, "parsed_full": 1, "parsed_partial": 0, "unparsed": 0,
         "no_query": 0, "deprecated": 0, "techniques": 2},
        {"vendor": "sigma", "rules": 3, "parsed_full": 3, "parsed_partial": 0, "unparsed": 0,
         "no_query": 0, "deprecated": 1, "techniques": 3},
        {"vendor": "splunk", "rules": 1, "parsed_full": 1, "parsed_partial": 0, "unparsed": 0,
         "no_query": 0, "deprecated": 0, "techniques": 1},
    ]


def test_rule_facets(golden):
    rows = run_query(golden, "rule_facets")

    assert sorted((r["facet"], r["value"], r["rules"]) for r in rows) == [
        ("domain", "endpoint", 5),
        ("platform", "linux", 2), ("platform", "windows", 3),
        ("vendor", "elastic", 1), ("vendor", "sigma", 3), ("vendor", "splunk", 1),
    ]


def test_guide_helper_matches_filters_without_case(golden):
    result = guide(golden, "T1505", platform=" Linux ")

    assert result.filters == {"platform": "linux"}
    assert [r["uid"] for rows in result.rules_by_vendor.values() for r in rows] == ["sigma:r5"]


def test_guide_helper_refuses_a_filter_value_no_rule_has(golden):
    with pytest.raises(UserError, match=r"vendor 'acme' \(known: elastic, sigma, splunk\)"):
        guide(golden, "T1505", vendor="acme")


def test_kb_info(golden):
    assert run_query(golden, "kb_info") == [{"key": "attack_version", "value": "18.1"}]


def test_guide_helper_assembles_typed_sections(golden):
    result = guide(golden, "t1505")

    assert result.technique["id"] == "T1505"
    assert [f.field for f in result.fields] == ["alpha", "beta", "delta", "epsilon", "gamma"]
    assert result.fields[0].operators == {"ends_with": 2, "eq": 1}
    assert sorted(result.rules_by_vendor) == ["elastic", "sigma"]
    assert [x["value"] for x in result.exclusions] == ["z1"]
