"""The Elastic loader on rule files written for the tests (the snapshot is in
test_elastic_corpus.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.model import RuleRecord
from kb.sources import RuleFile, Source
from loaders import elastic, get_loader

Row = tuple[str, str, str, bool, bool]


def parse(text: str, path: str = "rules/windows/test_rule.toml") -> RuleRecord:
    (record,) = elastic.parse_file(RuleFile(path, text), None)
    return record


def rows(record: RuleRecord) -> list[Row]:
    return [(r.field, r.op, r.value, r.negated, r.exclusion) for r in record.predicates]


def rule_toml(rule_lines: str, maturity: str = "production") -> str:
    return f"""
[metadata]
creation_date = "2024/01/01"
maturity = "{maturity}"
integration = ["endpoint"]

[rule]
author = ["Elastic"]
name = "Test rule"
rule_id = "00000000-0000-0000-0000-000000000001"
risk_score = 47
severity = "medium"
tags = ["OS: Windows", "OS: macOS", "Tactic: Execution"]
{rule_lines}

[[rule.threat]]
framework = "MITRE ATT&CK"
[[rule.threat.technique]]
id = "T1059"
[[rule.threat.technique.subtechnique]]
id = "t1059.001"
[rule.threat.tactic]
id = "TA0002"
"""


KQL_RULE = rule_toml('''type = "query"
language = "kuery"
index = ["logs-endpoint.events.process-*"]
query = \'\'\'
event.category:process and process.name:(powershell.exe or pwsh.exe) and
not process.parent.executable:C\\:\\\\Windows\\\\*
\'\'\'
''')


# ---- metadata

def test_elastic_parse_file_reads_metadata() -> None:
    record = parse(KQL_RULE)

    assert record.uid == "elastic:00000000-0000-0000-0000-000000000001"
    assert (record.title, record.language, record.severity, record.status) == (
        "Test rule", "kuery", "medium", "production")
    assert record.platforms == ("windows", "macos")
    assert record.techniques == ("T1059", "T1059.001")
    assert record.deprecated is False
    assert record.parse_status == "full"
    assert record.properties["rule_type"] == "query"
    assert record.properties["risk_score"] == 47
    assert record.properties["tactics"] == ["TA0002"]
    assert record.properties["building_block"] is False


def test_elastic_index_patterns_and_event_category_become_event_types() -> None:
    record = parse(KQL_RULE)

    assert record.event_types == ("elastic:index/logs-endpoint.events.process-*",
                                  "elastic:event.category/process")
    assert rows(record) == [
        ("event.category", "eq", "process", False, False),
        ("process.name", "in", "powershell.exe", False, False),
        ("process.name", "in", "pwsh.exe", False, False),
        ("process.parent.executable", "starts_with", "C:\\Windows\\", True, True),
    ]


def test_elastic_building_blocks_are_marked() -> None:
    record = parse(KQL_RULE.replace('type = "query"',
                                    'type = "query"\nbuilding_block_type = "default"'),
                   path="rules_building_block/test_rule.toml")

    assert record.properties["building_block"] is True
    assert record.properties["building_block_type"] == "default"


def test_elastic_deprecated_folder_marks_rules_deprecated() -> None:
    record = parse(rule_toml('type = "query"\nlanguage = "kuery"\nquery = "a:b"', "deprecated"),
                   path="rules/_deprecated/old_rule.toml")

    assert record.deprecated is True
    assert record.status == "deprecated"


def test_elastic_machine_learning_rule_has_no_query_and_no_problem() -> None:
    record = parse(rule_toml('type = "machine_learning"\nanomaly_threshold = 50\n'
                             'machine_learning_job_id = ["rare_process_windows"]'))

    assert record.parse_status == "no_query"
    assert record.problems == []
    assert record.language == ""
    assert record.properties["machine_learning_job_id"] == ["rare_process_windows"]
    assert record.properties["anomaly_threshold"] == 50


def test_elastic_threshold_new_terms_and_threat_match_settings_are_kept() -> None:
    threshold = parse(rule_toml('type = "threshold"\nlanguage = "kuery"\n'
                                'query = "event.outcome:failure"\n'
                                '[rule.threshold]\nfield = ["source.ip"]\nvalue = 25'))
    new_terms = parse(rule_toml('type = "new_terms"\nlanguage = "kuery"\nquery = "a:b"\n'
                                '[rule.new_terms]\nfield = "new_terms_fields"\n'
                                'value = ["host.id", "user.name"]'))
    threat_match = parse(rule_toml('type = "threat_match"\nlanguage = "kuery"\n'
                                   'query = "file.hash.*:*"\nthreat_index = ["filebeat-*"]\n'
                                   'threat_query = "event.module:threatintel"\n'
                                   'threat_mapping = [{entries = [{field = "file.hash.md5", '
                                   'type = "mapping", value = "threat.file.hash.md5"}]}]'))

    assert threshold.properties["threshold"] == {"field": ["source.ip"], "value": 25}
    assert rows(threshold) == [("event.outcome", "eq", "failure", False, False)]
    assert new_terms.properties["new_terms"]["value"] == ["host.id", "user.name"]
    assert threat_match.properties["threat_query"] == "event.module:threatintel"
    assert threat_match.properties["threat_mapping"][0]["entries"][0]["field"] == "file.hash.md5"
    assert rows(threat_match) == [("file.hash.*", "is_not_null", "", False, False)]


def test_elastic_required_fields_are_kept() -> None:
    record = parse(rule_toml('type = "query"\nlanguage = "kuery"\nquery = "a:b"\n'
                             '[[rule.required_fields]]\nname = "a"\ntype = "keyword"'))

    assert record.properties["required_fields"] == [{"name": "a", "type": "keyword"}]


def test_elastic_kibana_filters_are_anded_with_the_query() -> None:
    filters = r'''
[[rule.filters]]
[rule.filters.meta]
negate = true
[rule.filters.query.wildcard."file.path"]
case_insensitive = true
value = "?:\\\\Program Files\\\\*\\\\agent.ps1"
[[rule.filters]]
[rule.filters.meta]
negate = true
disabled = false
[rule.filters.exists]
field = "user_agent.original"
[[rule.filters]]
[rule.filters.meta]
negate = false
[rule.filters.query.match_phrase]
"event.module" = "threatintel"
[[rule.filters]]
[rule.filters.meta]
disabled = true
[rule.filters.query.match_phrase]
"event.module" = "ignored"
'''
    record = parse(rule_toml(f'type = "query"\nlanguage = "kuery"\nquery = "a:b"\n{filters}'))

    assert rows(record) == [
        ("a", "eq", "b", False, False),
        ("file.path", "wildcard", "?:\\Program Files\\*\\agent.ps1", True, True),
        ("user_agent.original", "is_not_null", "", True, True),
        ("event.module", "eq", "threatintel", False, False),
    ]


def test_elastic_eql_categories_follow_the_category_override() -> None:
    record = parse(rule_toml('type = "eql"\nlanguage = "eql"\n'
                             'event_category_override = "event.type"\n'
                             'query = \'info where event.action == "ModifyDBInstance"\''))

    assert record.event_types == ("elastic:event.type/info",)
    assert rows(record) == [("event.action", "eq", "ModifyDBInstance", False, False)]


def test_elastic_esql_sources_are_event_types_and_computed_columns_a_problem() -> None:
    query = ('from logs-system.security-* | eval Esql.n = length(process.name) '
             '| where Esql.n > 10')
    record = parse(rule_toml(f'type = "esql"\nlanguage = "esql"\nquery = """{query}"""'))

    assert record.event_types == ("elastic:index/logs-system.security-*",)
    assert [(r.field, r.computed) for r in record.predicates] == [("Esql.n", True)]
    assert [p.kind for p in record.problems] == ["computed_field"]
    assert record.parse_status == "full"
    assert record.properties["computed_columns"] == ["Esql.n"]


def test_elastic_lucene_rule() -> None:
    record = parse(rule_toml('type = "query"\nlanguage = "lucene"\n'
                             'query = "process.name:chmod AND NOT user.name:root"'))

    assert rows(record) == [("process.name", "eq", "chmod", False, False),
                            ("user.name", "eq", "root", True, True)]


def test_elastic_unreadable_query_is_kept_and_marked() -> None:
    record = parse(rule_toml('type = "query"\nlanguage = "kuery"\nquery = "a:(b or"'))

    assert record.parse_status == "none"
    assert [p.kind for p in record.problems] == ["unparsed"]
    assert "KQL syntax error at line 1" in record.problems[0].message


def test_elastic_unknown_language_is_unparsed() -> None:
    record = parse(rule_toml('type = "query"\nlanguage = "sql"\nquery = "select 1"'))

    assert record.parse_status == "none"
    assert "query language 'sql' not read" in record.problems[0].message


def test_elastic_query_without_language_is_kql() -> None:
    record = parse(rule_toml('type = "query"\nquery = "a:b"'))

    assert record.language == "kuery"
    assert rows(record) == [("a", "eq", "b", False, False)]


@pytest.mark.parametrize("extra", [
    'filters = ["not a table", 3]',
    'filters = [{meta = "x", query = "y"}]',
    'filters = [{query = {bool = {must = []}}}]',
    'required_fields = "x"',
    'index = "logs-*"',
])
def test_elastic_malformed_tables_never_raise(extra: str) -> None:
    record = parse(rule_toml(f'type = "query"\nlanguage = "kuery"\nquery = "a:b"\n{extra}'))

    assert record.uid == "elastic:00000000-0000-0000-0000-000000000001"
    assert ("a", "eq", "b", False, False) in rows(record)


def test_elastic_malformed_threat_entries_are_skipped() -> None:
    text = rule_toml('type = "query"\nlanguage = "kuery"\nquery = "a:b"').replace(
        'id = "TA0002"', 'id = "TA0002"\n[[rule.threat]]\nframework = "MITRE ATT&CK"\n'
        'technique = ["T1000"]')
    record = parse(text)

    assert record.techniques == ("T1059", "T1059.001")


def test_elastic_bad_toml_is_a_broken_record_naming_the_line() -> None:
    record = parse("[rule]\nrule_id = 'x'\nname = \n", path="rules/bad.toml")

    assert record.parse_status == "none"
    assert record.path == "rules/bad.toml"
    assert (record.problems[0].kind, record.problems[0].line) == ("toml", 3)


def test_elastic_toml_without_a_rule_is_a_broken_record() -> None:
    record = parse('[metadata]\nmaturity = "production"\n', path="rules/not_a_rule.toml")

    assert record.problems[0].kind == "schema"


# ---- finding rule files

def _write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text, encoding="utf-8")


def test_elastic_checkout_rule_paths_are_the_rule_folders(tmp_path: Path) -> None:
    _write(tmp_path, "rules/windows/a.toml", KQL_RULE)
    _write(tmp_path, "rules/_deprecated/b.toml", KQL_RULE)
    _write(tmp_path, "rules_building_block/c.toml", KQL_RULE)
    _write(tmp_path, "pyproject.toml", "[project]\nname = 'x'\n")
    _write(tmp_path, "hunting/windows/d.toml", "[hunt]\nname = 'x'\n")
    source = Source.open(tmp_path)

    assert elastic.detect(source)
    assert elastic.rule_paths(source) == [
        "rules/_deprecated/b.toml", "rules/windows/a.toml", "rules_building_block/c.toml"]


def test_elastic_loose_folder_rule_paths_are_sniffed(tmp_path: Path) -> None:
    _write(tmp_path, "a.toml", KQL_RULE)
    _write(tmp_path, "notes.toml", "[other]\nx = 1\n")
    _write(tmp_path, "b.yml", "title: x\n")
    source = Source.open(tmp_path)

    assert elastic.detect(source)
    assert elastic.rule_paths(source) == ["a.toml"]
    assert elastic.sniff("a.toml", KQL_RULE)
    assert not elastic.sniff("a.yml", KQL_RULE)


def test_elastic_detect_refuses_other_vendors(tmp_path: Path) -> None:
    _write(tmp_path, "rules/windows/a.yml", "title: x\ndetection:\n  condition: x\n")

    assert not elastic.detect(Source.open(tmp_path))


def test_elastic_loader_is_registered() -> None:
    assert get_loader("elastic") is elastic
    assert elastic.load_context(None) is None
