"""The Panther loader: Python rules written for the tests (read with ast, never run), YAML
simple detections, correlations and queries, and the whole pinned YAML snapshot."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import corpus_source

from kb.model import RuleRecord
from kb.sources import RuleFile, Source
from loaders import panther
from loaders.panther_python import rule_condition

FILES = Path(__file__).parent / "files" / "panther"
RULES = "rules/kb_test_rules"
MARKER = FILES / RULES / "EXECUTED"

Row = tuple[str, str, str, bool, bool]


@pytest.fixture(scope="module")
def test_records() -> dict[str, RuleRecord]:
    source = Source.open(FILES)
    context = panther.load_context(source)
    records = [record for path in panther.rule_paths(source)
               for record in panther.parse_file(source.rule_file(path), context)]
    return {record.native_id: record for record in records}


def rows(record: RuleRecord) -> list[Row]:
    return [(p.field, p.op, p.value, p.negated, p.exclusion) for p in record.predicates]


def python_rows(text: str) -> list[Row]:
    record = RuleRecord("panther", "x", "x", "x.py", "panther-python",
                        condition=rule_condition(text)).finish()
    return rows(record)


# --- Python rules written for the tests ------------------------------------------------------


def test_python_guards_read_as_exclusions(test_records: dict[str, RuleRecord]) -> None:
    record = test_records["KB.Test.Guards"]

    assert rows(record) == [
        ("eventName", "eq", "ConsoleLogin", False, False),
        ("userIdentity.type", "eq", "AssumedRole", True, True),
        ("additionalEventData.SamlProviderArn", "is_not_null", "", True, True),
        ("responseElements.ConsoleLogin", "eq", "Success", False, False),
        ("userIdentity.sessionContext.attributes.mfaAuthenticated", "eq", "true", True, True),
    ]
    assert (record.uid, record.language, record.parse_status) == (
        "panther:KB.Test.Guards", "panther-python", "full")
    assert record.techniques == ("T1078.004",)
    assert record.properties["tactics"] == ["TA0001"]
    assert record.event_types == ("panther:logtype/AWS.CloudTrail",)
    assert record.platforms == ("aws",)


def test_python_accessors_constants_and_string_methods(
        test_records: dict[str, RuleRecord]) -> None:
    record = test_records["KB.Test.Accessors"]

    assert rows(record) == [
        ("event_platform", "eq", "Win", False, False),
        ("parent_process_name", "in", "w3wp.exe", False, False),
        ("parent_process_name", "in", "httpd.exe", False, False),
        ("parent_process_name", "in", "nginx.exe", False, False),
        ("event.ImageFileName", "ends_with", "cmd.exe", False, False),
        ("event.ImageFileName", "ends_with", "powershell.exe", False, False),
        ("event.CommandLine", "contains", "http://", False, False),
        ("event.CommandLine", "contains", "https://", False, False),
        ("event.CommandLine", "starts_with", "certutil", False, False),
        ("event.ParentProcessId", "gt", "4", False, False),
    ]
    assert record.parse_status == "full"


def test_python_regular_expressions(test_records: dict[str, RuleRecord]) -> None:
    record = test_records["KB.Test.Regexes"]

    assert rows(record) == [
        ("process_name", "regex_match", r"^powershell(\.exe)?$", False, False),
        ("command_line", "regex_match", r"\s-e(nc|ncodedcommand)?\s", False, False),
        ("command_line", "regex_match", "FromBase64String", False, False),
    ]


def test_python_helpers_and_loops_are_unparsed(test_records: dict[str, RuleRecord]) -> None:
    record = test_records["KB.Test.Unfollowed"]

    assert rows(record) == [("eventName", "eq", "AssumeRole", False, False)]
    assert record.parse_status == "partial"
    assert [p.message.split(":")[0] for p in record.problems] == [
        "a call to aws_cloudtrail_success() the reader cannot follow",
        "a loop or block that returns",
    ]


def test_python_harmful_rule_is_read_but_never_run(
        test_records: dict[str, RuleRecord], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "system", lambda command: pytest.fail(f"os.system({command!r})"))
    source = Source.open(FILES)
    context = panther.load_context(source)

    [record] = panther.parse_file(source.rule_file(f"{RULES}/harmful.yml"), context)

    assert rows(record) == [("eventName", "eq", "DeleteTrail", False, False)]
    assert not MARKER.exists()
    assert "harmful" not in " ".join(sys.modules)
    assert test_records["KB.Test.Harmful"].parse_status == "full"


def test_python_absent_file_is_no_query(test_records: dict[str, RuleRecord]) -> None:
    record = test_records["KB.Test.Absent"]

    assert (record.parse_status, record.predicates) == ("no_query", [])
    assert record.properties["python_path"] == f"{RULES}/absent.py"
    assert record.deprecated
    assert record.status == "deprecated"
    assert record.techniques == ("T1110",)


def test_python_scheduled_rule_takes_log_types_from_its_query_tables(
        test_records: dict[str, RuleRecord]) -> None:
    record = test_records["KB.Test.Scheduled"]

    assert rows(record) == [("failures", "gte", "10", False, False)]
    assert record.event_types == ("panther:logtype/Okta.SystemLog",)


def test_python_if_chains_and_bound_conditions() -> None:
    text = '''
def rule(event):
    is_root = event.deep_get("userIdentity", "type") == "Root"
    if event.get("eventName") == "DeleteTrail":
        return is_root
    elif event.get("eventName") == "StopLogging":
        return event["requestParameters"]["name"] in ["prod", "audit"]
    return False
'''

    assert python_rows(text) == [
        ("eventName", "eq", "DeleteTrail", False, False),
        ("userIdentity.type", "eq", "Root", False, False),
        ("eventName", "eq", "DeleteTrail", True, False),
        ("eventName", "eq", "StopLogging", False, False),
        ("requestParameters.name", "in", "prod", False, False),
        ("requestParameters.name", "in", "audit", False, False),
    ]


def test_python_none_checks_subscripts_and_slices() -> None:
    text = '''
def rule(event):
    if event.get("errorCode") is not None or not event.get("sourceIPAddress"):
        return False
    return event["userAgent"][0:3] == "aws" or event.get("tags", [None])[0] == "x"
'''

    record = RuleRecord("panther", "x", "x", "x.py", "panther-python",
                        condition=rule_condition(text)).finish()

    assert rows(record) == [
        ("errorCode", "is_not_null", "", True, True),
        ("sourceIPAddress", "is_not_null", "", False, True),
        ("tags[0]", "eq", "x", False, False),
    ]
    assert record.parse_status == "partial"
    assert record.problems[0].message == (
        'a comparison the reader cannot follow: event["userAgent"][0:3] == "aws"')


def test_python_syntax_error_is_unparsed_with_the_line() -> None:
    record = RuleRecord("panther", "x", "x", "x.py", "panther-python",
                        condition=rule_condition("def rule(event):\n    return (\n")).finish()

    assert record.parse_status == "none"
    assert record.problems[0].message.startswith("not valid Python (line 2):")


# --- YAML logic ----------------------------------------------------------------------------


def test_yaml_simple_detection_match_expressions(test_records: dict[str, RuleRecord]) -> None:
    record = test_records["KB.Test.Simple"]

    assert rows(record) == [
        ("action", "in", "repo.archived", False, False),
        ("action", "in", "repo.destroy", False, False),
        ("actor_location.country_code", "eq", "US", True, False),
        ("business.name", "starts_with", "test-", False, False),
        ("actor", "ends_with", "[bot]", True, True),
        ("org", "is_not_null", "", False, True),
        ("repo_count", "gt", "5", False, False),
        ("members[*].role", "eq", "admin", False, False),
    ]
    assert record.language == "panther-yaml"
    assert record.parse_status == "partial"
    assert record.problems[0].message.startswith("unsupported condition IsIPAddressPublic")


def test_yaml_correlation_ands_its_rules_and_negates_absence(
        test_records: dict[str, RuleRecord]) -> None:
    record = test_records["KB.Test.Correlation"]
    guards = rows(test_records["KB.Test.Guards"])
    absent = [(f, op, v, not neg, True) for f, op, v, neg, _ in
              rows(test_records["KB.Test.Accessors"])]

    assert rows(record) == guards + absent
    assert record.properties["correlated_rules"] == ["KB.Test.Guards", "KB.Test.Accessors"]
    assert record.event_types == ("panther:logtype/AWS.CloudTrail",
                                  "panther:logtype/Crowdstrike.FDREvent")
    assert record.techniques == ("T1505.003",)


def test_yaml_query_is_no_query_with_its_sql(test_records: dict[str, RuleRecord]) -> None:
    record = test_records["KB Test Failed Logins"]

    assert (record.uid, record.language, record.parse_status) == (
        "panther:KB Test Failed Logins", "panther-sql", "no_query")
    assert "FROM panther_logs.public.okta_systemlog" in record.properties["sql"]
    assert record.properties["tables"] == ["panther_logs.public.okta_systemlog"]


def test_parse_file_bad_yaml_names_the_line() -> None:
    [record] = panther.parse_file(RuleFile("rules/x.yml", "AnalysisType: rule\nRuleID: [\n"))

    assert record.parse_status == "none"
    assert record.problems[0].kind == "syntax"
    assert record.problems[0].line == 3


def test_sniff_needs_an_analysis_type() -> None:
    assert panther.sniff("a.yml", "AnalysisType: scheduled_rule\nRuleID: x\n")
    assert not panther.sniff("a.yml", "title: x\nlogsource:\n  product: windows\n")


# --- the pinned snapshot -------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapshot() -> list[RuleRecord]:
    source = corpus_source("panther")
    context = panther.load_context(source)
    return [record for path in panther.rule_paths(source)
            for record in panther.parse_file(source.rule_file(path), context)]


@pytest.mark.corpus
def test_snapshot_counts_per_analysis_type_and_status(snapshot: list[RuleRecord]) -> None:
    counts = Counter((r.properties["analysis_type"], r.language, r.parse_status)
                     for r in snapshot)

    assert counts == {
        ("rule", "panther-python", "no_query"): 865,
        ("rule", "panther-yaml", "full"): 1,
        ("scheduled_rule", "panther-python", "no_query"): 57,
        ("correlation_rule", "panther-yaml", "no_query"): 30,
        ("correlation_rule", "panther-yaml", "partial"): 1,
        ("scheduled_query", "panther-sql", "no_query"): 77,
        ("saved_query", "panther-sql", "no_query"): 18,
    }
    assert len({r.uid for r in snapshot}) == len(snapshot)


@pytest.mark.corpus
def test_snapshot_metadata_floors(snapshot: list[RuleRecord]) -> None:
    rules = [r for r in snapshot if r.properties["analysis_type"] in panther.RULE_TYPES]

    assert sum(1 for r in rules if r.techniques) >= 645
    assert sum(1 for r in rules if r.event_types) >= 945
    assert sum(1 for r in snapshot if r.deprecated) == 17
    assert sum(1 for r in snapshot if any(t.startswith("T1505") for t in r.techniques)) == 1
    assert sum(1 for r in snapshot if r.properties["analysis_type"] in panther.QUERY_TYPES
               and r.event_types) >= 88


@pytest.mark.corpus
def test_snapshot_simple_detection_and_correlation_rows(snapshot: list[RuleRecord]) -> None:
    archived = next(r for r in snapshot if r.native_id == "Github.Repo.Archived")
    correlation = next(r for r in snapshot if r.native_id ==
                       "GitHub.Advanced.Security.Change.NOT.FOLLOWED.BY.Repo.Archived")

    assert rows(archived) == [("action", "eq", "repo.archived", False, False)]
    assert rows(correlation) == [("action", "eq", "repo.archived", True, True)]
    assert correlation.problems[0].message.startswith("the correlated rule's logic is not")
