"""ATT&CK from STIX bundles: the real 18.1 bundle, the demo subset and broken bundles."""

import gzip
import json

import pytest

from kb.demo import demo_attack_bundle
from kb.errors import SourceError
from loaders.attack import load_attack


@pytest.mark.corpus
def test_attack_real_bundle_counts(attack_catalog):
    techniques = attack_catalog.techniques
    active = [t for t in techniques if not t["revoked"] and not t["deprecated"]]

    assert (attack_catalog.domain, attack_catalog.version) == ("Enterprise ATT&CK", "18.1")
    assert len(techniques) == 835
    assert len(active) == 691
    assert sum(t["is_subtechnique"] for t in active) == 475
    assert len(attack_catalog.tactics) == 14
    assert len(attack_catalog.redirects) == 132
    assert len(attack_catalog.detection_strategies) == 691
    assert len(attack_catalog.analytics) == 1739
    assert len(attack_catalog.data_components) == 109


@pytest.mark.corpus
def test_attack_real_bundle_web_shell(attack_catalog):
    [web_shell] = [t for t in attack_catalog.techniques if t["id"] == "T1505.003"]

    assert web_shell["name"] == "Web Shell"
    assert web_shell["tactics"] == ["persistence"]
    assert web_shell["parent"] == "T1505"
    assert "Windows" in web_shell["platforms"]


@pytest.mark.corpus
def test_attack_revoked_ids_resolve_to_current_technique(attack_catalog):
    assert attack_catalog.resolve("T1086") == "T1059.001"
    assert attack_catalog.resolve("T1059.001") == "T1059.001"


@pytest.mark.corpus
def test_attack_detection_strategies_name_techniques_and_analytics(attack_catalog):
    strategies = [s for s in attack_catalog.detection_strategies if "T1505.003" in s["techniques"]]

    assert strategies
    assert all(s["analytics"] for s in strategies)


def test_attack_demo_subset_has_a_redirect_and_a_strategy():
    catalog = load_attack(demo_attack_bundle())

    assert catalog.redirects == {"T1086": "T1059.001"}
    assert [s["techniques"] for s in catalog.detection_strategies] == [["T1505.003"]]


def test_attack_missing_bundle_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such ATT&CK bundle"):
        load_attack(tmp_path / "missing.json")


def test_attack_non_json_bundle_names_the_file(tmp_path):
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(gzip.compress(b"{not json"))

    with pytest.raises(SourceError, match=r"bad\.json\.gz: not a readable STIX bundle"):
        load_attack(bad)


def test_attack_truncated_bundle_names_the_file(tmp_path):
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(gzip.compress(demo_attack_bundle().read_bytes())[:-200])

    with pytest.raises(SourceError, match=r"cut\.json\.gz: not a readable STIX bundle"):
        load_attack(cut)


def test_attack_json_that_is_not_a_bundle_is_refused(tmp_path):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"type": "bundle", "objects": []}))

    with pytest.raises(SourceError, match="holds no ATT&CK techniques"):
        load_attack(bad)
