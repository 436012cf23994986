"""The Elastic loader on the pinned snapshot: three rules labelled by hand, then every rule."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import corpus_source

from kb.model import RuleRecord
from loaders import elastic

# ---- three real rules, labelled by hand


def corpus_rule(path: str) -> RuleRecord:
    source = corpus_source("elastic")
    (record,) = elastic.parse_file(source.rule_file(path), elastic.load_context(source))
    return record


def full_rows(record: RuleRecord) -> set[tuple[str, str, str, bool, bool, bool]]:
    return {(r.field, r.op, r.value, r.negated, r.exclusion, r.computed)
            for r in record.predicates}


@pytest.mark.corpus
def test_elastic_real_kuery_rule_web_config_access() -> None:
    record = corpus_rule("rules/windows/credential_access_web_config_file_access.toml")
    excluded = [r"C:\Program Files\Microsoft Security Client\MsMpEng.exe",
                r"C:\Program Files\Windows Defender Advanced Threat Protection\MsSense.exe",
                r"C:\Windows\System32\MRT.exe",
                r"C:\Windows\System32\inetsrv\w3wp.exe"]

    assert record.uid == "elastic:5841b80f-a1f8-4c00-a966-d2cc4a7a82e4"
    assert record.techniques == ("T1552", "T1552.001", "T1005")
    assert record.platforms == ("windows",)
    assert record.event_types == ("elastic:index/logs-endpoint.events.file-*",
                                  "elastic:event.category/file")
    assert record.properties["new_terms"]["value"] == ["process.executable", "user.id"]
    assert record.parse_status == "full"
    assert full_rows(record) == {
        ("event.category", "eq", "file", False, False, False),
        ("host.os.type", "eq", "windows", False, False, False),
        ("event.action", "eq", "open", False, False, False),
        ("file.name", "eq", "web.config", False, False, False),
        ("file.path", "contains", "VirtualDirectories", False, False, False),
        *{("process.executable", "in", path, True, True, False) for path in excluded},
        ("process.executable", "wildcard",
         r"?:\Program Files\Common Files\microsoft shared\Web Server Extensions\*\BIN\*",
         True, True, False),
    }


@pytest.mark.corpus
def test_elastic_real_eql_sequence_rule_dcom_mmc20() -> None:
    record = corpus_rule("rules/windows/lateral_movement_dcom_mmc20.toml")

    assert record.uid == "elastic:51ce96fb-9e52-4dad-b0ba-99b54440fc9a"
    assert record.techniques == ("T1021", "T1021.003", "T1218", "T1218.014", "T1559",
                                 "T1559.001")
    assert set(record.event_types) == {
        "elastic:index/winlogbeat-*", "elastic:index/logs-endpoint.events.process-*",
        "elastic:index/logs-endpoint.events.network-*",
        "elastic:index/logs-windows.sysmon_operational-*",
        "elastic:event.category/network", "elastic:event.category/process",
        "elastic:event.type/start"}
    assert record.parse_status == "full"
    assert full_rows(record) == {
        ("host.os.type", "eq", "windows", False, False, False),
        ("event.type", "eq", "start", False, False, False),
        ("process.name", "eq", "mmc.exe", False, False, False),
        ("source.port", "gte", "49152", False, False, False),
        ("destination.port", "gte", "49152", False, False, False),
        ("source.ip", "eq", "127.0.0.1", True, True, False),
        ("source.ip", "eq", "::1", True, True, False),
        ("network.direction", "in", "incoming", False, False, False),
        ("network.direction", "in", "ingress", False, False, False),
        ("network.transport", "eq", "tcp", False, False, False),
        ("process.parent.name", "eq", "mmc.exe", False, False, False),
    }


@pytest.mark.corpus
def test_elastic_real_esql_rule_long_base64_command_line() -> None:
    record = corpus_rule(
        "rules/cross-platform/defense_evasion_long_base64_encoded_interpreter_command_line.toml")
    command_line = "process.command_line.text"  # `command_line = TO_LOWER(...)` in an EVAL

    assert record.uid == "elastic:74d31cb7-4a2c-44fe-9d1d-f375b9f3cb61"
    assert record.platforms == ("windows", "macos", "linux")
    assert record.techniques == ("T1027", "T1140", "T1059", "T1059.001", "T1059.006",
                                 "T1059.007")
    assert record.event_types == ("elastic:index/logs-endpoint.events.process-*",
                                  "elastic:event.category/process", "elastic:event.type/start")
    assert record.parse_status == "full"
    assert [p.kind for p in record.problems] == ["computed_field"]
    assert full_rows(record) == {
        ("_ignored", "eq", "process.command_line", False, False, False),
        ("event.category", "eq", "process", False, False, False),
        ("event.type", "eq", "start", False, False, False),
        ("process.name", "starts_with", "python", False, False, False),
        ("process.name", "starts_with", "powershell", False, False, False),
        ("process.name", "starts_with", "pwsh", False, False, False),
        ("process.name", "starts_with", "node", False, False, False),
        ("process.name", "starts_with", "deno", False, False, False),
        (command_line, "contains", "b64decode", False, False, False),
        (command_line, "contains", "-c", False, False, False),
        (command_line, "contains", "base64", False, False, False),
        (command_line, "regex_match",
         ".* -(e|en|enc|enco|encod|encode|encoded|encodedcommand) .+", False, False, False),
        (command_line, "contains", "-encodedcommand", False, False, False),
        (command_line, "contains", "frombase64string", False, False, False),
        (command_line, "contains", "buffer.from", False, False, False),
        (command_line, "contains", "atob(", False, False, False),
        (command_line, "contains", "eval(", False, False, False),
        ("Esql.length_cmdline", "gte", "4000", False, False, True),
    }


# ---- the whole snapshot

@pytest.fixture(scope="module")
def corpus_records() -> list[RuleRecord]:
    source = corpus_source("elastic")
    context = elastic.load_context(source)
    return [record for path in elastic.rule_paths(source)
            for record in elastic.parse_file(source.rule_file(path), context)]


@pytest.mark.corpus
def test_elastic_corpus_every_rule_file_is_one_record(corpus_records: list[RuleRecord]) -> None:
    kinds = Counter(problem.kind for record in corpus_records for problem in record.problems)

    assert len(corpus_records) >= 2190
    assert kinds["toml"] == kinds["schema"] == 0
    assert sum(record.deprecated for record in corpus_records) >= 120
    assert sum(record.properties["building_block"] for record in corpus_records) >= 128
    assert len({record.uid for record in corpus_records}) == len(corpus_records)


@pytest.mark.corpus
def test_elastic_corpus_queries_parse_fully(corpus_records: list[RuleRecord]) -> None:
    live = [record for record in corpus_records if not record.deprecated]
    with_query = [record for record in live if record.parse_status != "no_query"]
    full = Counter(record.language for record in with_query if record.parse_status == "full")

    assert sum(full.values()) / len(with_query) >= 0.98
    assert full["eql"] >= 1015
    assert full["kuery"] >= 720
    assert full["esql"] >= 205
    assert sum(record.parse_status == "no_query" for record in live) >= 100
    assert sum(record.parse_status == "none" for record in corpus_records) <= 5


@pytest.mark.corpus
def test_elastic_corpus_techniques_and_event_types(corpus_records: list[RuleRecord]) -> None:
    live = [record for record in corpus_records if not record.deprecated]
    t1505 = [r for r in live if any(t.split(".")[0] == "T1505" for t in r.techniques)]
    kinds = Counter(key.split("/")[0] for record in live for key in record.event_types)

    assert len(t1505) >= 30
    assert sum(bool(record.techniques) for record in live) >= 1950
    assert sum(bool(record.platforms) for record in live) >= 1150
    assert kinds["elastic:index"] >= 5300
    assert kinds["elastic:event.category"] >= 1350
    assert sum(len(record.predicates) for record in live) >= 40000
