"""Build steps that do not need a corpus: technique settling and duplicate rule ids."""

from kb.build import settle, technique_names
from kb.demo import demo_attack_bundle
from kb.model import RuleRecord
from kb.report import LoadReport
from loaders.attack import load_attack


def record(uid: str, path: str, techniques=(), names=()):
    vendor, native_id = uid.split(":")
    rule = RuleRecord(vendor, native_id, "t", path, "x", techniques=techniques)
    rule.properties["technique_names"] = list(names)
    return rule


def test_technique_names_know_parent_colon_sub_forms():
    names = technique_names(load_attack(demo_attack_bundle()))

    assert names["web shell"] == "T1505.003"
    assert names["server software component: web shell"] == "T1505.003"


def test_settle_resolves_names_follows_revocations_and_drops_unknown_ids():
    report = LoadReport()
    rule = record("chronicle:a", "a.yaral", techniques=("T1086", "T9999"),
                  names=("Server Software Component: IIS Components", "No Such Thing"))

    [settled] = settle([rule], load_attack(demo_attack_bundle()), report)

    assert settled.techniques == ("T1059.001", "T1505.004")
    assert report.redirects == [{"uid": "chronicle:a", "tagged": "T1086", "now": "T1059.001"}]
    assert sorted(p.message for p in settled.problems) == [
        "unknown ATT&CK id T9999", "unknown technique name 'No Such Thing'"]


def test_settle_keeps_the_first_of_a_duplicated_uid_and_reports_it():
    report = LoadReport()

    kept = settle([record("sentinel:x", "a.yaml"), record("sentinel:x", "b.yaml")],
                  load_attack(demo_attack_bundle()), report)

    assert [r.path for r in kept] == ["a.yaml"]
    assert report.duplicates == [{"uid": "sentinel:x", "kept": "a.yaml", "dropped": "b.yaml"}]
