"""The whole Azure-Sentinel snapshot through the Sentinel loader: figures asserted as floors,
and three real rules labelled by hand."""

import re
from collections import Counter

import pytest
from conftest import corpus_source

from loaders import sentinel

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def records():
    source = corpus_source("sentinel")
    return [r for path in sentinel.rule_paths(source)
            for r in sentinel.parse_file(source.rule_file(path))]


@pytest.fixture(scope="module")
def by_path(records):
    return {r.path: r for r in records}


def rows(record):
    return [(r.field, r.op, r.value, r.negated, r.exclusion, r.computed)
            for r in record.predicates]


def test_sentinel_corpus_every_file_becomes_a_record(records):
    kinds = Counter(r.properties["kind"] for r in records)

    assert len(records) == 1904
    assert kinds == {"analytic": 833, "hunting": 1071}


def test_sentinel_corpus_duplicate_analytic_ids_are_kept_for_the_build(records):
    analytic = [r.uid for r in records if r.properties["kind"] == "analytic"]

    assert len(set(analytic)) == 823


def test_sentinel_corpus_parse_floors(records):
    status = Counter(r.parse_status for r in records)

    assert status["full"] >= 1875
    assert status["full"] / len(records) >= 0.90
    assert status["partial"] <= 14
    assert status["none"] <= 13
    assert status["no_query"] == 0


def test_sentinel_corpus_unparsed_reasons(records):
    reasons = Counter(re.sub(r"(:| \(line).*", "", p.message)
                      for r in records for p in r.problems if p.kind == "unparsed")

    assert sum(reasons.values()) <= 33
    assert reasons["unreadable source"] <= 10
    assert reasons["unsupported operator invoke"] <= 6


def test_sentinel_corpus_bom_and_crlf_files_load(by_path):
    bom = by_path["Detections/TrendMicroXDR/Create Incident for XDR Alerts (Critical & High).yaml"]

    assert bom.parse_status == "full"
    assert bom.uid == "sentinel:0febd8cc-1b8d-45ed-87b3-e1e8a57d14cd"
    assert bom.title == "Create Incident for XDR Alerts (Critical & High)"


def test_sentinel_corpus_event_types_and_techniques(records):
    event_types = Counter(e for r in records for e in r.event_types)

    assert sum(1 for r in records if not r.event_types) <= 7
    assert event_types["sentinel:table/DeviceProcessEvents"] >= 200
    assert event_types["sentinel:table/SecurityEvent/4688"] >= 48
    assert any(e.startswith("sentinel:asim/imProcess") for e in event_types)
    assert sum(1 for r in records if r.techniques) >= 1260


def test_sentinel_real_rule_rundll32_has_all(by_path):
    record = by_path["Detections/SecurityEvent/NOBELIUM_SuspiciousRundll32Exec.yaml"]

    assert record.parse_status == "full"
    assert record.techniques == ("T1547",)
    assert record.event_types == ("sentinel:table/SecurityEvent",
                                  "sentinel:table/SecurityEvent/4688")
    assert rows(record) == [
        ("EventID", "eq", "4688", False, False, False),
        ("Process", "eq", "rundll32.exe", False, False, False),
        ("CommandLine", "match", "Execute", False, False, False),
        ("CommandLine", "match", "RegRead", False, False, False),
        ("CommandLine", "match", "window.close", False, False, False),
    ]


def test_sentinel_real_rule_rightanti_join_baseline(by_path):
    # The recent day's UM service children (right side) that the 14-day baseline (left side,
    # under the anti-join's NOT) never saw.
    record = by_path["Detections/SecurityEvent/HAFNIUMNewUMServiceChildProcess.yaml"]

    assert record.parse_status == "full"
    assert rows(record) == [
        ("ParentProcessName", "match", "umworkerprocess.exe", False, False, False),
        ("ParentProcessName", "match", "UMService.exe", False, False, False),
        ("EventID", "eq", "4688", False, False, False),
        ("EventID", "eq", "4688", True, True, False),
        ("ParentProcessName", "match", "umworkerprocess.exe", True, True, False),
        ("ParentProcessName", "match", "UMService.exe", True, True, False),
    ]


def test_sentinel_real_rule_tabular_let_and_computed_exclusions(by_path):
    # `Computer in~ (ADFS_Servers)` ANDs the let's filters; `process` is split() of Image.
    record = by_path["Detections/SecurityEvent/ADFSDBNamedPipeConnection.yaml"]
    excluded = ["Microsoft.IdentityServer.ServiceHost.exe",
                "Microsoft.Identity.Health.Adfs.PshSurrogate.exe", "AzureADConnect.exe",
                "Microsoft.Tri.Sensor.exe", "wsmprovhost.exe", "mmc.exe", "sqlservr.exe"]

    assert record.parse_status == "full"
    assert record.event_types == ("sentinel:table/Event",)
    assert rows(record) == [
        ("Source", "eq", "Microsoft-Windows-Sysmon", False, False, False),
        ("EventID", "eq", "18", False, False, False),
        ("process", "eq", "Microsoft.IdentityServer.ServiceHost.exe", False, False, True),
        ("PipeName", "eq", "\\MICROSOFT##WID\\tsql\\query", False, False, False),
        *[("process", "in", name, True, True, True) for name in excluded],
    ]
    assert [p.kind for p in record.problems] == ["computed_field"]
