"""EQL to predicate rows and event categories: small queries written for the tests."""

from __future__ import annotations

from kb.model import Unparsed, flatten
from loaders.elastic_eql import parse_eql


def rows(query: str) -> list[tuple[str, str, str, bool, bool]]:
    parsed = parse_eql(query)
    return [(r.field, r.op, r.value, r.negated, r.exclusion) for r in flatten(parsed.condition)]


def test_eql_equality_and_category() -> None:
    parsed = parse_eql('process where process.name == "cmd.exe"')

    assert parsed.categories == ["process"]
    assert rows('process where process.name == "cmd.exe"') == [
        ("process.name", "eq", "cmd.exe", False, False)]


def test_eql_colon_and_like_fold_wildcards_and_ignore_case_flags() -> None:
    assert rows('any where a : "*x*" and b like~ "x*" and c : "*x" and d like "x?y" '
                'and e : "*"') == [
        ("a", "contains", "x", False, False),
        ("b", "starts_with", "x", False, False),
        ("c", "ends_with", "x", False, False),
        ("d", "wildcard", "x?y", False, False),
        ("e", "is_not_null", "", False, False),
    ]


def test_eql_in_lists_are_in_and_single_values_eq() -> None:
    assert rows('any where a in ("x", "y") and b in~ ("z") and c : ("p", "q*")') == [
        ("a", "in", "x", False, False),
        ("a", "in", "y", False, False),
        ("b", "eq", "z", False, False),
        ("c", "eq", "p", False, False),
        ("c", "starts_with", "q", False, False),
    ]


def test_eql_negative_operators() -> None:
    assert rows('any where a != "x" and not b in ("y", "z") and c == null and d != null') == [
        ("a", "eq", "x", True, True),
        ("b", "in", "y", True, True),
        ("b", "in", "z", True, True),
        ("c", "is_not_null", "", True, True),
        ("d", "is_not_null", "", False, False),
    ]


def test_eql_regex_is_verbatim() -> None:
    assert rows(r'any where a regex~ """.*\d{3}.*""" and b regex ".*[a-z]+"') == [
        ("a", "regex_match", r".*\d{3}.*", False, False),
        ("b", "regex_match", ".*[a-z]+", False, False),
    ]


def test_eql_string_functions() -> None:
    assert rows('any where startsWith(a, "x") and endswith~(b, "y") and stringContains(c, "z")'
                ' and cidrMatch(d, "10.0.0.0/8", "127.0.0.0/8") and wildcard(e, "*w*")') == [
        ("a", "starts_with", "x", False, False),
        ("b", "ends_with", "y", False, False),
        ("c", "contains", "z", False, False),
        ("d", "cidr", "10.0.0.0/8", False, False),
        ("d", "cidr", "127.0.0.0/8", False, False),
        ("e", "contains", "w", False, False),
    ]


def test_eql_escapes_are_undone() -> None:
    assert rows(r'file where file.path : "C:\\Windows\\*" and a == "say \"hi\""') == [
        ("file.path", "starts_with", "C:\\Windows\\", False, False),
        ("a", "eq", 'say "hi"', False, False),
    ]


def test_eql_optional_field_loses_its_marker_and_numbers_stay_as_written() -> None:
    assert rows("any where ?process.Ext.relative_file_creation_time <= 500 and x >= 1.5 "
                "and y == true") == [
        ("process.Ext.relative_file_creation_time", "lte", "500", False, False),
        ("x", "gte", "1.5", False, False),
        ("y", "eq", "true", False, False),
    ]


def test_eql_field_to_field_comparisons_give_no_row() -> None:
    assert rows('any where a == "x" and startswith(string(b), string(c)) and '
                "stringcontains(d, e)") == [("a", "eq", "x", False, False)]


def test_eql_function_of_a_field_is_computed() -> None:
    parsed = parse_eql('process where length(process.command_line) > 255')

    assert [(r.field, r.op, r.value, r.computed) for r in flatten(parsed.condition)] == [
        ("length(process.command_line)", "gt", "255", True)]
    assert parsed.computed == ["length(process.command_line)"]


def test_eql_sequence_gives_every_step_and_its_category() -> None:
    query = """
    sequence by host.id with maxspan=1m
      [process where process.name : "mmc.exe" and not user.id == "S-1-5-18"]
      [network where destination.port == 135] with runs=2
      ![file where file.extension : "tmp"]
    until [process where event.type == "end"]
    """
    parsed = parse_eql(query)

    assert parsed.categories == ["process", "network", "file"]
    assert parsed.properties["eql_kind"] == "sequence"
    assert rows(query) == [
        ("process.name", "eq", "mmc.exe", False, False),
        ("user.id", "eq", "S-1-5-18", True, True),
        ("destination.port", "eq", "135", False, False),
        ("file.extension", "eq", "tmp", True, True),
        ("event.type", "eq", "end", True, True),
    ]


def test_eql_sample_gives_every_step() -> None:
    parsed = parse_eql('sample by host.id [process where a == "x"] [registry where b == "y"]')

    assert parsed.categories == ["process", "registry"]
    assert [(r.field, r.value) for r in flatten(parsed.condition)] == [("a", "x"), ("b", "y")]


def test_eql_any_where_true_is_full_with_no_rows() -> None:
    parsed = parse_eql("any where true")

    assert parsed.categories == []
    assert flatten(parsed.condition) == []
    assert not isinstance(parsed.condition, Unparsed)


def test_eql_syntax_error_is_unparsed_with_position() -> None:
    parsed = parse_eql('process where process.name == ')

    assert isinstance(parsed.condition, Unparsed)
    assert parsed.condition.reason.startswith("EQL syntax error at line 1, column")
