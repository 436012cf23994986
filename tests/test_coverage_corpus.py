"""Coverage on all six pinned snapshots with ATT&CK 18.1, built once for the module, checked
against counts taken independently: the bundle's techniques and raw Cypher over the graph's
rows rather than the canned queries the helpers use."""

from __future__ import annotations

from collections import defaultdict

import pytest
from conftest import ARCHIVES, ATTACK_BUNDLE, CORPORA
from typer.testing import CliRunner

from kb import coverage as cov
from kb.cli import app
from kb.commands.common import EXIT_OK
from kb.graph.ladybug_backend import LadybugBackend

pytestmark = pytest.mark.corpus
runner = CliRunner()


@pytest.fixture(scope="module")
def kb_all(tmp_path_factory, attack_catalog):
    db = tmp_path_factory.mktemp("all") / "kb.lbug"
    args = ["-q", "build", "--attack", str(ATTACK_BUNDLE), "--db", str(db)]
    for archive in ARCHIVES.values():
        args += ["--source", str(CORPORA / archive)]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_OK, result.output
    backend = LadybugBackend(db, read_only=True)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def catalogue(kb_all):
    return cov.load_catalogue(kb_all)


def _current(attack_catalog):
    return {t["id"]: t for t in attack_catalog.techniques
            if not t["revoked"] and not t["deprecated"]}


def _detects(kb_all):
    """(technique, vendor, status, deprecated) of every DETECTS edge, straight from the graph."""
    return kb_all.query("MATCH (r:Rule)-[:DETECTS]->(t:Technique) RETURN t.id AS technique, "
                        "r.uid AS uid, r.vendor AS vendor, r.status AS status, "
                        "r.deprecated AS deprecated")


def test_coverage_corpus_every_status_word_is_mapped(kb_all):
    words = {row["status"] for row in kb_all.query("MATCH (r:Rule) RETURN DISTINCT r.status "
                                                   "AS status")}

    assert words <= set(cov.STATUS_MATURITY)
    assert {"test", "stable", "production", "experimental", "deprecated", ""} <= words


def test_coverage_corpus_no_rule_gaps_match_the_bundle_less_tagged_techniques(
        kb_all, catalogue, attack_catalog):
    current = _current(attack_catalog)
    tagged = {row["technique"] for row in _detects(kb_all)}
    covered = tagged | {current[t]["parent"] for t in tagged if t in current}

    gaps = cov.gaps(kb_all, kinds=["no_rule"], catalogue=catalogue)

    assert {g.id for g in gaps} == set(current) - covered
    assert 120 <= len(gaps) <= 200


def test_coverage_corpus_gap_kinds_match_raw_rows(kb_all, catalogue, attack_catalog):
    current = _current(attack_catalog)
    rules = defaultdict(set)
    for row in _detects(kb_all):
        for technique in (row["technique"], current.get(row["technique"], {}).get("parent")):
            if technique in current:
                rules[technique].add((row["uid"], row["vendor"], row["status"],
                                      row["deprecated"]))
    mature_words = {"", "stable", "test", "production"}
    only_experimental = {t for t, rs in rules.items()
                         if not any(not d and s in mature_words for _, _, s, d in rs)}
    one_vendor = {t for t, rs in rules.items() if t not in only_experimental
                  and len({v for _, v, _, d in rs if not d}) == 1}

    gaps = cov.gaps(kb_all, catalogue=catalogue)

    assert {g.id for g in gaps if g.kind == "only_experimental"} == only_experimental
    assert {g.id for g in gaps if g.kind == "one_vendor"} == one_vendor
    assert [g.kind for g in gaps] == sorted((g.kind for g in gaps), key=cov.GAP_KINDS.index)


def test_coverage_corpus_navigator_layer_loads_with_a_score_per_covered_technique(
        kb_all, catalogue, tmp_path):
    live = kb_all.query("MATCH (r:Rule)-[:DETECTS]->(t:Technique) WHERE r.deprecated = false "
                        "AND t.revoked = false AND t.deprecated = false "
                        "RETURN t.id AS technique, count(DISTINCT r.vendor) AS vendors")
    path = tmp_path / "layer.json"

    layer = cov.navigator_layer(kb_all, catalogue=catalogue)
    count = cov.write_layer(layer, path)

    assert count == len(live)
    assert {t["techniqueID"]: t["score"] for t in layer["techniques"]} == {
        row["technique"]: row["vendors"] for row in live}
    assert (layer["domain"], layer["versions"]["attack"]) == ("enterprise-attack", "18")


def test_coverage_corpus_sysmon_keeps_every_rule_observing_sysmon_telemetry(kb_all, catalogue):
    sysmon_rules = {row["uid"] for row in kb_all.query(
        "MATCH (r:Rule)-[:OBSERVES]->(e:EventType) WHERE r.deprecated = false "
        "AND e.telemetry STARTS WITH 'Sysmon' RETURN DISTINCT r.uid AS uid")}

    result = cov.coverage_with(kb_all, ["sysmon"], catalogue=catalogue)
    out = {r["uid"] for r in result.rules_out}

    assert len(sysmon_rules) >= 1000
    assert not sysmon_rules & out
    assert result.rules_kept + len(out) == result.rules_considered
    assert result.rules_kept >= 4000
    assert len(result.techniques) >= 400
    assert result.best_additions[0]["techniques_gained"] >= 20


def test_coverage_corpus_compare_sigma_elastic_matches_raw_technique_sets(kb_all, catalogue):
    tagged = defaultdict(set)
    for row in _detects(kb_all):
        if not row["deprecated"]:
            tagged[row["vendor"]].add(row["technique"])

    result = cov.compare(kb_all, "sigma", "elastic", catalogue=catalogue)

    assert {t["id"] for t in result.only_vendor} == tagged["sigma"] - tagged["elastic"]
    assert {t["id"] for t in result.only_other} == tagged["elastic"] - tagged["sigma"]
    assert {t["id"] for t in result.shared} == tagged["sigma"] & tagged["elastic"]


def test_coverage_corpus_blind_techniques_have_no_observed_needed_component(kb_all):
    observed = {row["component"] for row in kb_all.query(
        "MATCH (r:Rule)-[:OBSERVES]->(:EventType)-[:FEEDS]->(d:DataComponent) "
        "WHERE r.deprecated = false RETURN DISTINCT d.id AS component")}
    needs = defaultdict(set)
    for row in kb_all.query(
            "MATCH (s:DetectionStrategy)-[:STRATEGY_FOR]->(t:Technique), "
            "(s)-[:HAS_ANALYTIC]->(:Analytic)-[:NEEDS]->(d:DataComponent) "
            "WHERE t.revoked = false AND t.deprecated = false "
            "RETURN DISTINCT t.id AS technique, d.id AS component"):
        needs[row["technique"]].add(row["component"])

    blind, feeds = cov.log_source_gaps(kb_all)

    assert feeds
    assert {g.id for g in blind} == {t for t, components in needs.items()
                                     if not components & observed}
    assert 20 <= len(blind) <= 80
