"""Lucene query strings to predicate rows: small queries written for the tests."""

from __future__ import annotations

from kb.model import Unparsed, flatten
from loaders.elastic_lucene import parse_lucene


def rows(query: str) -> list[tuple[str, str, str, bool, bool]]:
    return [(r.field, r.op, r.value, r.negated, r.exclusion)
            for r in flatten(parse_lucene(query))]


def test_lucene_fields_wildcards_and_not() -> None:
    assert rows(r"process.name:chm* AND c:C\:\\Win*\\x.exe AND NOT user.name:root") == [
        ("process.name", "starts_with", "chm", False, False),
        ("c", "wildcard", "C:\\Win*\\x.exe", False, False),
        ("user.name", "eq", "root", True, True),
    ]


def test_lucene_value_groups_regex_and_phrases() -> None:
    assert rows(r'event.type:(start OR process_started) AND a:/2[0-9]{3}/ AND b:"x \"y\""') == [
        ("event.type", "in", "start", False, False),
        ("event.type", "in", "process_started", False, False),
        ("a", "regex_match", "2[0-9]{3}", False, False),
        ("b", "eq", 'x "y"', False, False),
    ]


def test_lucene_lower_case_or_between_values_is_read_as_or() -> None:
    assert rows("event.type:(start or process_started)") == [
        ("event.type", "in", "start", False, False),
        ("event.type", "in", "process_started", False, False),
    ]


def test_lucene_ranges() -> None:
    assert rows("a:[1 TO 5] AND b:{* TO 3}") == [
        ("a", "gte", "1", False, False),
        ("a", "lte", "5", False, False),
        ("b", "lt", "3", False, False),
    ]


def test_lucene_field_less_terms_are_keywords() -> None:
    assert rows('mimikatz "sekurlsa logonpasswords"') == [
        ("", "keyword", "mimikatz", False, False),
        ("", "keyword", "sekurlsa logonpasswords", False, False),
    ]


def test_lucene_syntax_error_is_unparsed() -> None:
    node = parse_lucene("a:(b OR")

    assert isinstance(node, Unparsed)
    assert node.reason.startswith("Lucene syntax error")
