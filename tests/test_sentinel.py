"""The Sentinel loader on small rule files written for the tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from kb.model import Pred
from kb.sources import RuleFile, Source
from loaders import get_loader, sentinel

ANALYTIC = """id: 0d1e2f30-0000-4000-8000-000000000001
name: Suspicious rundll32
description: |
  'A test rule.'
severity: Medium
requiredDataConnectors:
  - connectorId: SecurityEvents
    dataTypes:
      - SecurityEvent
  - connectorId: MicrosoftThreatProtection
    dataTypes:
      - DeviceProcessEvents
queryFrequency: 1h
queryPeriod: 14d
triggerOperator: gt
triggerThreshold: 0
tactics:
  - Execution
  - DefenseEvasion
relevantTechniques:
  - T1218.011
  - t1059
query: |
  SecurityEvent
  | where EventID == 4688
  | where Process =~ "rundll32.exe" and CommandLine has_any ("javascript", "mshtml")
kind: Scheduled
version: 1.0.0
"""

HUNTING = """id: 0d1e2f30-0000-4000-8000-000000000002
name: Rare process
requiredDataConnectors:
  - connectorId: MicrosoftThreatProtection
    dataTypes:
      - DeviceProcessEvents
tactics:
  - Execution
query: |
  DeviceProcessEvents | where FileName =~ "x.exe"
"""


def parse(path: str, text: str):
    (record,) = sentinel.parse_file(RuleFile(path, text))
    return record


def test_parse_file_reads_the_rule_metadata() -> None:
    record = parse("Detections/SecurityEvent/rundll32.yaml", ANALYTIC)

    assert record.uid == "sentinel:0d1e2f30-0000-4000-8000-000000000001"
    assert record.title == "Suspicious rundll32"
    assert record.language == "kusto"
    assert record.severity == "medium"
    assert record.techniques == ("T1218.011", "T1059")
    assert record.event_types == ("sentinel:table/SecurityEvent",
                                  "sentinel:table/SecurityEvent/4688")
    assert record.properties == {
        "kind": "analytic",
        "yaml_kind": "Scheduled",
        "tactics": ["Execution", "DefenseEvasion"],
        "required_data_connectors": [
            {"connector_id": "SecurityEvents", "data_types": ["SecurityEvent"]},
            {"connector_id": "MicrosoftThreatProtection", "data_types": ["DeviceProcessEvents"]},
        ],
        "query_frequency": "1h",
        "query_period": "14d",
        "trigger_operator": "gt",
        "trigger_threshold": "0",
        "version": "1.0.0",
    }


def test_parse_file_rows_of_a_rule() -> None:
    record = parse("Detections/SecurityEvent/rundll32.yaml", ANALYTIC)

    assert record.parse_status == "full"
    assert [(r.field, r.op, r.value, r.negated, r.exclusion) for r in record.predicates] == [
        ("EventID", "eq", "4688", False, False),
        ("Process", "eq", "rundll32.exe", False, False),
        ("CommandLine", "match", "javascript", False, False),
        ("CommandLine", "match", "mshtml", False, False),
    ]


def test_parse_file_hunting_query_kind() -> None:
    record = parse("Hunting Queries/DeviceProcessEvents/rare.yaml", HUNTING)

    assert record.properties["kind"] == "hunting"
    assert record.properties["yaml_kind"] == ""
    assert record.condition == Pred("FileName", "eq", ("x.exe",))


def test_parse_file_kind_of_a_lone_file_comes_from_its_keys() -> None:
    assert parse("rundll32.yaml", ANALYTIC).properties["kind"] == "analytic"
    assert parse("rare.yaml", HUNTING).properties["kind"] == "hunting"


def test_parse_file_crlf_and_bom() -> None:
    text = "\ufeff" + ANALYTIC.replace("\n", "\r\n")

    record = parse("Detections/x.yaml", text)

    assert record.parse_status == "full"
    assert len(record.predicates) == 4


def test_source_reads_bom_and_crlf_from_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "sentinel.tar.gz"
    data = b"\xef\xbb\xbf" + ANALYTIC.replace("\n", "\r\n").encode()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("Azure-Sentinel/Detections/SecurityEvent/rundll32.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    source = Source.open(archive)

    (path,) = sentinel.rule_paths(source)
    (record,) = sentinel.parse_file(source.rule_file(path))

    assert sentinel.detect(source)
    assert record.parse_status == "full"
    assert record.native_id == "0d1e2f30-0000-4000-8000-000000000001"


def test_parse_file_without_query_is_no_query() -> None:
    record = parse("Hunting Queries/x.yaml", HUNTING.replace(
        'query: |\n  DeviceProcessEvents | where FileName =~ "x.exe"\n', "query: ''\n"))

    assert record.parse_status == "no_query"
    assert record.problems == []


def test_parse_file_broken_yaml_names_the_line() -> None:
    record = parse("Detections/bad.yaml", "id: x\nname: [unclosed\nquery: T\n")

    assert record.parse_status == "none"
    assert record.problems[0].kind == "yaml"
    assert record.problems[0].line == 3


def test_parse_file_not_a_rule() -> None:
    record = parse("Detections/list.yaml", "- a\n- b\n")

    assert record.parse_status == "none"
    assert record.problems[0].kind == "not_a_rule"


def test_parse_file_unparsed_stage_names_the_file_line() -> None:
    text = ANALYTIC.replace('  | where EventID == 4688\n', '  | where EventID == 4688\n  | frob\n')

    record = parse("Detections/x.yaml", text)

    assert record.parse_status == "partial"
    assert [p.message for p in record.problems if p.kind == "unparsed"] == [
        "unknown operator frob (line 26): frob"]
    assert text.splitlines()[25] == "  | frob"


def test_parse_file_computed_field_problem() -> None:
    text = HUNTING.replace('DeviceProcessEvents | where FileName =~ "x.exe"',
                           'DeviceProcessEvents | extend n = strlen(FileName) | where n > 20')

    record = parse("Hunting Queries/x.yaml", text)

    assert record.parse_status == "full"
    assert [(p.kind, p.message) for p in record.problems] == [
        ("computed_field", "filter on computed column 'n', not a source field")]
    assert record.predicates[0].computed


def test_techniques_skip_empty_entries_and_read_the_techniques_key() -> None:
    text = ANALYTIC.replace("  - T1218.011\n  - t1059\n", "  -\n").replace(
        "kind: Scheduled", "techniques:\n  - T1003.001\nkind: Scheduled")

    assert parse("Detections/x.yaml", text).techniques == ("T1003.001",)


def test_sniff_tells_sentinel_rules_from_others() -> None:
    assert sentinel.sniff("x.yaml", ANALYTIC)
    assert sentinel.sniff("x.yml", HUNTING)
    assert not sentinel.sniff("x.yml", "title: t\nlogsource:\n  product: windows\ndetection:\n")
    assert not sentinel.sniff("x.toml", ANALYTIC)


def test_rule_paths_of_a_plain_folder_sniff_the_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ANALYTIC)
    (tmp_path / "notes.yaml").write_text("title: not a rule\n")

    source = Source.open(tmp_path)

    assert not sentinel.detect(source)
    assert sentinel.rule_paths(source) == ["a.yaml"]


def test_loader_is_registered() -> None:
    assert get_loader("sentinel") is sentinel
    assert sentinel.load_context(None) is None
