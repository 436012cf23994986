"""Coverage helpers and commands on the golden graph's coverage extension, whose answers are
worked out by hand in tests/golden_graph.py (the canned queries themselves are checked on both
engines in test_coverage_queries.py)."""

from __future__ import annotations

import json

import pytest
from golden_graph import coverage_tables
from typer.testing import CliRunner

from kb import coverage as cov
from kb.cli import app
from kb.commands.common import EXIT_OK, EXIT_USER_ERROR
from kb.errors import SchemaError, UserError
from kb.graph.ladybug_backend import LadybugBackend

runner = CliRunner()


@pytest.fixture(scope="module")
def golden_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("coverage") / "coverage.lbug"
    backend = LadybugBackend(path)
    backend.load(coverage_tables())
    backend.close()
    return path


@pytest.fixture(scope="module")
def golden(golden_db):
    backend = LadybugBackend(golden_db, read_only=True)
    yield backend
    backend.close()


def _ids(gaps):
    return [(g.id, g.kind) for g in gaps]


# --- words -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "deprecated", "expected"), [
    ("stable", False, "mature"), ("test", False, "mature"), ("production", False, "mature"),
    ("", False, "mature"), (None, False, "mature"), ("Experimental", False, "experimental"),
    ("development", False, "experimental"), ("validation", False, "experimental"),
    ("unsupported", False, "experimental"), ("someday", False, "experimental"),
    ("deprecated", True, "deprecated"), ("stable", True, "deprecated"),
])
def test_maturity_maps_vendor_status_words(status, deprecated, expected):
    assert cov.maturity(status, deprecated) == expected


def test_attack_platforms_maps_loader_words():
    assert cov.attack_platforms(["Windows", "aws", "okta", "zeek"]) == {
        "windows", "iaas", "identity provider"}


# --- gaps ------------------------------------------------------------------------------------


def test_gaps_rank_no_rule_then_only_experimental_then_one_vendor(golden):
    result = cov.gaps(golden)

    assert _ids(result) == [
        ("T1556", "no_rule"), ("T1557", "no_rule"),
        ("T1558", "only_experimental"), ("T1003.001", "only_experimental"),
        ("T1003", "only_experimental"),
        ("T1059", "one_vendor"), ("T1059.001", "one_vendor"), ("T1505.004", "one_vendor"),
    ]
    assert result[0].as_dict() == {
        "id": "T1556", "name": "Modify Authentication Process", "kind": "no_rule",
        "tactics": ["credential-access"], "platforms": ["Windows", "Linux"],
        "is_subtechnique": False, "rules": 0, "live_rules": 0, "mature_rules": 0,
        "vendors": [], "analytics": 2, "data_components": 1, "unobserved_components": 1}
    assert (result[7].rules, result[7].live_rules, result[7].vendors) == (2, 1, ["elastic"])


def test_gaps_without_roll_up_count_only_a_techniques_own_rules(golden):
    assert _ids(cov.gaps(golden, roll_up=False)) == [
        ("T1556", "no_rule"), ("T1003", "no_rule"), ("T1059", "no_rule"), ("T1557", "no_rule"),
        ("T1558", "only_experimental"), ("T1003.001", "only_experimental"),
        ("T1059.001", "one_vendor"), ("T1505", "one_vendor"), ("T1505.004", "one_vendor"),
    ]


def test_gaps_of_one_vendor_have_no_one_vendor_kind(golden):
    assert _ids(cov.gaps(golden, vendors=["sigma"])) == [
        ("T1556", "no_rule"), ("T1003.001", "no_rule"), ("T1003", "no_rule"),
        ("T1059", "no_rule"), ("T1059.001", "no_rule"), ("T1557", "no_rule"),
        ("T1558", "no_rule"), ("T1505.004", "only_experimental"),
    ]


def test_gaps_on_a_platform_count_rules_that_may_run_there(golden):
    assert _ids(cov.gaps(golden, platform="linux")) == [
        ("T1556", "no_rule"), ("T1003.001", "no_rule"), ("T1505.003", "no_rule"),
        ("T1003", "no_rule"), ("T1505.004", "no_rule"),
        ("T1059", "one_vendor"), ("T1059.001", "one_vendor"), ("T1505", "one_vendor"),
    ]


@pytest.mark.parametrize(("filters", "ids"), [
    ({"tactics": ["persistence"]}, ["T1505.004"]),
    ({"tactics": ["TA0002"]}, ["T1059", "T1059.001"]),
    ({"tactics": ["Credential Access"], "kinds": ["no_rule"]}, ["T1556", "T1557"]),
    ({"kinds": ["only_experimental", "one_vendor"], "vendors": ["splunk", "elastic"]},
     ["T1003.001", "T1003", "T1505.003", "T1059", "T1059.001", "T1505", "T1505.004"]),
])
def test_gaps_filters(golden, filters, ids):
    assert [g.id for g in cov.gaps(golden, **filters)] == ids


@pytest.mark.parametrize(("filters", "message"), [
    ({"platform": "plan9"}, "unknown ATT&CK platform 'plan9'"),
    ({"vendors": ["acme"]}, "no rules of vendor acme"),
    ({"kinds": ["tiny"]}, "unknown gap kind tiny"),
    ({"tactics": ["lunch"]}, "unknown tactic 'lunch'"),
])
def test_gaps_user_errors(golden, filters, message):
    with pytest.raises(UserError, match=message):
        cov.gaps(golden, **filters)


def test_log_source_gaps_blind_techniques(golden):
    found, feeds = cov.log_source_gaps(golden)

    assert feeds
    assert [g.as_dict() for g in found] == [{
        "id": "T1556", "name": "Modify Authentication Process", "needed": 1, "blind": True,
        "unobserved": [{"data_component": "DC0067", "name": "Logon Session Creation",
                        "log_sources": ["WinEventLog:Security:EventCode=4624",
                                        "auditd:USER_LOGIN"], "analytics": 2}]}]


@pytest.mark.parametrize(("vendors", "ids"), [
    (["splunk"], ["T1505.003", "T1556"]),
    (["sigma", "splunk"], ["T1556"]),
    (["sigma"], ["T1003.001", "T1556"]),
])
def test_log_source_gaps_by_vendor(golden, vendors, ids):
    found, _ = cov.log_source_gaps(golden, vendors)

    assert [g.id for g in found] == ids


# --- telemetry -------------------------------------------------------------------------------


def test_resolve_have_reads_keys_categories_and_telemetry_names():
    have = cov.resolve_have(["splunk:data_source/Sysmon EventID 1", "process_access",
                             "sysmon eventid 10", "# a comment", ""])

    assert have.resolved == {
        "splunk:data_source/Sysmon EventID 1": ["splunk:data_source/Sysmon EventID 1",
                                                "Sysmon EventID 1 (process_creation)"],
        "process_access": ["category process_access"],
        "sysmon eventid 10": ["Sysmon EventID 10 (process_access)"],
    }


def test_resolve_have_a_piece_of_a_name_takes_every_telemetry_holding_it():
    have = cov.resolve_have(["Sysmon"])

    assert "Sysmon EventID 1 (process_creation)" in have.resolved["Sysmon"]
    assert "Sysmon for Linux EventID 1 (process_creation)" in have.resolved["Sysmon"]
    assert all("sysmon" in label.lower() for label in have.resolved["Sysmon"])


@pytest.mark.parametrize(("names", "key", "expected"), [
    (["Sysmon EventID 1"], "sigma:windows/process_creation", True),
    (["Sysmon EventID 1"], "sigma:linux/process_creation", False),
    (["Sysmon for Linux EventID 1"], "sigma:linux/process_creation", True),
    (["Sysmon EventID 1"], "splunk:datamodel/Endpoint.Processes", True),
    (["Sysmon EventID 1"], "elastic:index/logs-windows.sysmon_operational-*", True),
    (["Sysmon EventID 1"], "splunk:data_source/Sysmon EventID 10", False),
    (["process_creation"], "sigma:linux/process_creation", True),
    (["sigma:windows/*"], "sigma:windows/process_creation", True),
    (["sigma:windows/*"], "splunk:datamodel/Endpoint.Processes", False),
    (["sigma:windows/process_creation"], "elastic:event.category/process", False),
])
def test_have_satisfies(names, key, expected):
    assert cov.resolve_have(names).satisfies(key) is expected


def test_resolve_have_unknown_name_is_a_user_error():
    with pytest.raises(UserError, match="'nonsense' is no event type"):
        cov.resolve_have(["nonsense"])


def test_coverage_with_sysmon_process_creation(golden):
    result = cov.coverage_with(golden, ["Sysmon EventID 1"])

    assert (result.rules_considered, result.rules_kept, result.rules_unknown) == (6, 4, 1)
    assert [r["uid"] for r in result.rules_out] == ["sigma:r5", "splunk:r6"]
    assert [(t["id"], t["rules"]) for t in result.techniques] == [
        ("T1003", 1), ("T1003.001", 1), ("T1059", 1), ("T1059.001", 1), ("T1505", 2),
        ("T1505.003", 2), ("T1505.004", 1)]
    assert result.techniques_lost == []
    assert result.best_additions == []


def test_coverage_with_one_sigma_key_suggests_sysmon_first(golden):
    result = cov.coverage_with(golden, ["sigma:windows/process_creation"], suggestions=20)

    assert [t["id"] for t in result.techniques] == ["T1505", "T1505.003"]
    assert [t["id"] for t in result.techniques_lost] == [
        "T1003", "T1003.001", "T1059", "T1059.001", "T1505.004"]
    assert result.best_additions[0] == {
        "source": "Sysmon EventID 1 (process_creation)", "techniques_gained": 5,
        "rules_gained": 3,
        "techniques": ["T1003", "T1003.001", "T1059", "T1059.001", "T1505.004"]}
    assert {"source": "Sysmon EventID 10 (process_access)", "techniques_gained": 2,
            "rules_gained": 1, "techniques": ["T1003", "T1003.001"]} in result.best_additions


@pytest.mark.parametrize(("names", "vendors", "kept"), [
    (["process_creation"], [], 5),
    (["sysmon"], [], 6),
    (["sigma:windows/process_creation"], ["sigma"], 1),
])
def test_coverage_with_counts(golden, names, vendors, kept):
    result = cov.coverage_with(golden, names, vendors)

    assert result.rules_kept == kept
    assert result.rules_kept + len(result.rules_out) == result.rules_considered


def test_read_have_file_skips_comments(tmp_path):
    listing = tmp_path / "have.txt"
    listing.write_text("# what we collect\nSysmon EventID 1\n\nprocess_access  # EDR\n")

    assert cov.read_have_file(listing) == ["Sysmon EventID 1", "process_access"]


# --- Navigator -------------------------------------------------------------------------------


def test_navigator_layer_scores_techniques_by_vendors(golden):
    layer = cov.navigator_layer(golden)

    assert (layer["domain"], layer["versions"]["layer"], layer["versions"]["attack"]) == (
        "enterprise-attack", "4.5", "18")
    assert [(t["techniqueID"], t["score"]) for t in layer["techniques"]] == [
        ("T1003.001", 2), ("T1059.001", 1), ("T1505", 1), ("T1505.003", 3), ("T1505.004", 1)]
    assert layer["techniques"][0]["comment"] == (
        "2 rules from 2 vendors: elastic 1, splunk 1; 2 experimental")
    assert layer["techniques"][3]["metadata"] == [
        {"name": "rules", "value": "3"}, {"name": "elastic", "value": "1"},
        {"name": "sentinel", "value": "1"}, {"name": "sigma", "value": "1"}]
    assert layer["gradient"]["maxValue"] == 3


def test_navigator_layer_for_a_platform_and_vendor(golden):
    layer = cov.navigator_layer(golden, vendors=["sigma", "splunk"], platform="linux",
                                score="rules")

    assert [(t["techniqueID"], t["score"]) for t in layer["techniques"]] == [
        ("T1059.001", 1), ("T1505", 1)]
    assert layer["filters"]["platforms"] == ["Linux"]


def test_navigator_layer_written_loads_back(golden, tmp_path):
    path = tmp_path / "layer.json"

    count = cov.write_layer(cov.navigator_layer(golden), path)

    assert count == 5
    assert json.loads(path.read_text(encoding="utf-8"))["name"] == (
        "kb rule coverage: all vendors (vendors)")


def test_check_layer_rejects_a_layer_that_does_not_load(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"name": "no domain"}), encoding="utf-8")

    with pytest.raises(SchemaError, match="not a loadable Navigator layer"):
        cov.check_layer(path)


@pytest.mark.parametrize(("domain", "expected"), [
    ("Enterprise ATT&CK", "enterprise-attack"), ("Mobile ATT&CK", "mobile-attack"),
    ("ICS ATT&CK", "ics-attack")])
def test_navigator_domain_from_the_bundle_name(domain, expected):
    assert cov.navigator_domain({"attack_domain": domain}) == expected


# --- compare and drill-downs -----------------------------------------------------------------


def test_compare_two_vendors(golden):
    result = cov.compare(golden, "sigma", "elastic")

    assert result.only_vendor == [{"id": "T1505", "name": "Server Software Component",
                                   "rules": 1}]
    assert [t["id"] for t in result.only_other] == ["T1003.001", "T1505.004"]
    assert result.shared == [{
        "id": "T1505.003", "name": "Web Shell", "rules": {"sigma": 1, "elastic": 1},
        "only_in": {"sigma": 1, "elastic": 2},
        "samples": {"sigma": [{"field": "beta", "op": "eq", "value": "y1", "rules": 1}],
                    "elastic": [{"field": "delta", "op": "eq", "value": "v1", "rules": 1},
                                {"field": "delta", "op": "eq", "value": "v2", "rules": 1}]}}]


@pytest.mark.parametrize(("pair", "message"), [
    (("sigma", "sigma"), "two different vendors"), (("sigma", "acme"), "no rules of vendor")])
def test_compare_user_errors(golden, pair, message):
    with pytest.raises(UserError, match=message):
        cov.compare(golden, *pair)


def test_drill_field_groups_rules_by_technique(golden):
    result = cov.drill_field(golden, "alpha")

    assert [r["uid"] for r in result.rules] == ["elastic:r2", "sigma:r1", "sigma:r5",
                                                "splunk:r6"]
    assert result.techniques == [
        {"id": "T1505.003", "name": "Web Shell", "rules": 2,
         "vendors": {"elastic": 1, "sigma": 1}},
        {"id": "T1003.001", "name": "LSASS Memory", "rules": 1, "vendors": {"splunk": 1}},
        {"id": "T1505", "name": "Server Software Component", "rules": 1,
         "vendors": {"sigma": 1}},
        {"id": "T1505.004", "name": "IIS Components", "rules": 1, "vendors": {"elastic": 1}},
    ]


@pytest.mark.parametrize(("args", "subject", "uids"), [
    (("alpha", "ends_with", "X1"), {"field": "alpha", "op": "ends_with", "value": "x1"},
     ["elastic:r2", "sigma:r1", "splunk:r6"]),
    (("delta", "in", "v1"), {"field": "delta", "op": "eq", "value": "v1"},
     ["elastic:r2", "elastic:r7"]),
    (("alpha", "", "x1"), {"field": "alpha", "op": "", "value": "x1"},
     ["elastic:r2", "sigma:r1", "splunk:r6"]),
])
def test_drill_indicator_folds_what_it_is_given(golden, args, subject, uids):
    result = cov.drill_indicator(golden, *args)

    assert result.subject == subject
    assert [r["uid"] for r in result.rules] == uids


def test_drill_event_type_places_it_in_the_taxonomy(golden):
    result = cov.drill_event_type(golden, "splunk:data_source/Sysmon EventID 10")

    assert result.subject == {"event_type": "splunk:data_source/Sysmon EventID 10",
                              "category": "process_access", "telemetry": "Sysmon EventID 10"}
    assert [(r["uid"], r["techniques"]) for r in result.rules] == [("splunk:r6", ["T1003.001"])]


def test_rule_neighbours_with_similarity(golden):
    rows = cov.rule_neighbours(golden, "sigma:r1")

    assert [(r["uid"], r["shared"], r["similarity"]) for r in rows] == [
        ("splunk:r4", 2, 0.667), ("splunk:r6", 2, 0.667), ("sentinel:r8", 1, 0.333),
        ("elastic:r2", 1, 0.2)]


def test_rule_neighbours_of_an_unknown_rule(golden):
    with pytest.raises(UserError, match="no rule 'sigma:nope'"):
        cov.rule_neighbours(golden, "sigma:nope")


# --- commands --------------------------------------------------------------------------------


def _run(golden_db, *args):
    return runner.invoke(app, [*args, "--db", str(golden_db)])


def test_cli_gaps_text_and_json(golden_db):
    text = _run(golden_db, "gaps")
    data = _run(golden_db, "gaps", "--kind", "no_rule", "--format", "json")

    assert text.exit_code == EXIT_OK, text.output
    assert "no_rule 2, only_experimental 3, one_vendor 3" in text.output
    assert [g["id"] for g in json.loads(data.output)] == ["T1556", "T1557"]


def test_cli_gaps_log_sources(golden_db):
    result = _run(golden_db, "gaps", "--log-sources", "--format", "json")

    assert result.exit_code == EXIT_OK, result.output
    assert [g["id"] for g in json.loads(result.output)] == ["T1556"]


def test_cli_coverage_from_a_file(golden_db, tmp_path):
    listing = tmp_path / "have.txt"
    listing.write_text("sigma:windows/process_creation\n")

    result = _run(golden_db, "coverage", "--have-file", str(listing), "--format", "json")

    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.output)["best_additions"][0]["source"] == (
        "Sysmon EventID 1 (process_creation)")


def test_cli_coverage_text(golden_db):
    result = _run(golden_db, "coverage", "--have", "sysmon")

    assert result.exit_code == EXIT_OK, result.output
    assert "Rules that run: 6 of 6 (1 more name no event type)" in result.output


def test_cli_navigator_writes_a_layer_that_loads(golden_db, tmp_path):
    out = tmp_path / "layer.json"

    result = _run(golden_db, "navigator", "--out", str(out), "--vendor", "elastic")

    assert result.exit_code == EXIT_OK, result.output
    assert "3 techniques, Navigator layer 4.5, enterprise-attack, ATT&CK 18" in result.output
    assert cov.check_layer(out) == 3


def test_cli_compare_text(golden_db):
    result = _run(golden_db, "compare", "sigma", "elastic")

    assert result.exit_code == EXIT_OK, result.output
    assert "sigma only: 1, elastic only: 2, shared: 1" in result.output


@pytest.mark.parametrize(("args", "expected"), [
    (["field", "alpha"], 4),
    (["indicator", "delta", "eq", "v1"], 2),
    (["event", "sigma:windows/process_creation", "--deprecated"], 2),
])
def test_cli_drill_json(golden_db, args, expected):
    result = _run(golden_db, "drill", *args, "--format", "json")

    assert result.exit_code == EXIT_OK, result.output
    assert len(json.loads(result.output)["rules"]) == expected


def test_cli_drill_rule_neighbours(golden_db):
    result = _run(golden_db, "drill", "rule", "sigma:r1", "--limit", "1", "--format", "json")

    assert result.exit_code == EXIT_OK, result.output
    assert [r["uid"] for r in json.loads(result.output)] == ["splunk:r4"]


@pytest.mark.parametrize(("args", "message"), [
    (["coverage"], "name the telemetry you have"),
    (["coverage", "--have", "nonsense"], "'nonsense' is no event type"),
    (["drill", "indicator", "alpha"], "drill indicator takes FIELD OP VALUE"),
    (["drill", "rule", "sigma:nope"], "no rule 'sigma:nope'"),
    (["gaps", "--platform", "plan9"], "unknown ATT&CK platform"),
    (["compare", "sigma", "sigma"], "two different vendors"),
])
def test_cli_coverage_user_errors_exit_2(golden_db, args, message):
    result = _run(golden_db, *args)

    assert result.exit_code == EXIT_USER_ERROR
    assert message in result.output
    assert "Traceback" not in result.output
