"""KQL to predicate rows: small queries written for the tests, whole rows asserted."""

from __future__ import annotations

import pytest

from kb.model import And, Unparsed, flatten
from loaders.elastic_kuery import parse_kuery


def rows(query: str) -> list[tuple[str, str, str, bool, bool]]:
    return [(r.field, r.op, r.value, r.negated, r.exclusion) for r in flatten(parse_kuery(query))]


def test_kuery_field_value_is_eq() -> None:
    assert rows("process.name:cmd.exe") == [("process.name", "eq", "cmd.exe", False, False)]


def test_kuery_value_list_is_in_one_row_per_value() -> None:
    assert rows("process.name:(bash or sh)") == [
        ("process.name", "in", "bash", False, False),
        ("process.name", "in", "sh", False, False),
    ]


def test_kuery_wildcards_fold_into_operators() -> None:
    assert rows("a:*x* and b:x* and c:*x and d:x*y and e:*") == [
        ("a", "contains", "x", False, False),
        ("b", "starts_with", "x", False, False),
        ("c", "ends_with", "x", False, False),
        ("d", "wildcard", "x*y", False, False),
        ("e", "is_not_null", "", False, False),
    ]


def test_kuery_mixed_list_keeps_equalities_apart_from_wildcards() -> None:
    assert rows("process.name:(bash or python* or sh)") == [
        ("process.name", "in", "bash", False, False),
        ("process.name", "in", "sh", False, False),
        ("process.name", "starts_with", "python", False, False),
    ]


def test_kuery_escaped_path_is_a_wildcard_on_the_path() -> None:
    assert rows(r"process.executable:C\:\\Windows\\*") == [
        ("process.executable", "starts_with", "C:\\Windows\\", False, False),
    ]


def test_kuery_escaped_star_stays_literal() -> None:
    assert rows(r"a:x\*y") == [("a", "eq", "x*y", False, False)]


def test_kuery_quoted_value_is_an_exact_phrase() -> None:
    assert rows(r'a:"C:\Program Files\x*" and b:"say \"hi\""') == [
        ("a", "eq", "C:\\Program Files\\x*", False, False),
        ("b", "eq", 'say "hi"', False, False),
    ]


def test_kuery_ranges() -> None:
    assert rows("a > 1 and b >= 2.5 and c < 3 and d <= 4") == [
        ("a", "gt", "1", False, False),
        ("b", "gte", "2.5", False, False),
        ("c", "lt", "3", False, False),
        ("d", "lte", "4", False, False),
    ]


def test_kuery_not_is_an_exclusion() -> None:
    assert rows("event.category:process and not user.name:(root or admin)") == [
        ("event.category", "eq", "process", False, False),
        ("user.name", "in", "root", True, True),
        ("user.name", "in", "admin", True, True),
    ]


def test_kuery_not_inside_a_value_list() -> None:
    assert rows("process.name:(* and not (sudo or vim))") == [
        ("process.name", "is_not_null", "", False, False),
        ("process.name", "in", "sudo", True, True),
        ("process.name", "in", "vim", True, True),
    ]


def test_kuery_or_of_filters_is_not_an_exclusion() -> None:
    assert rows("a:1 or not b:2") == [("a", "eq", "1", False, False), ("b", "eq", "2", True, False)]


def test_kuery_nested_fields_are_named_from_their_parent() -> None:
    assert rows("policy.bindings:{ role:owner and members:(user* or group*) }") == [
        ("policy.bindings.role", "eq", "owner", False, False),
        ("policy.bindings.members", "starts_with", "user", False, False),
        ("policy.bindings.members", "starts_with", "group", False, False),
    ]


def test_kuery_keywords_need_whitespace_so_words_may_start_with_them() -> None:
    assert rows("notepad:1 and order:x or android:y") == [
        ("notepad", "eq", "1", False, False),
        ("order", "eq", "x", False, False),
        ("android", "eq", "y", False, False),
    ]


def test_kuery_unquoted_value_may_hold_spaces() -> None:
    assert rows("process.name:my prog.exe and x:1") == [
        ("process.name", "eq", "my prog.exe", False, False),
        ("x", "eq", "1", False, False),
    ]


def test_kuery_field_less_term_is_a_keyword() -> None:
    assert rows("mimikatz") == [("", "keyword", "mimikatz", False, False)]


def test_kuery_wildcard_field_names_stay_as_written() -> None:
    assert rows("file.hash.*:*") == [("file.hash.*", "is_not_null", "", False, False)]


def test_kuery_empty_query_has_no_rows() -> None:
    assert parse_kuery("  ") == And(())


@pytest.mark.parametrize("query", ["a:(b or", "a:b)", 'a:"open'])
def test_kuery_syntax_error_is_unparsed_with_position(query: str) -> None:
    node = parse_kuery(query)

    assert isinstance(node, Unparsed)
    assert node.text == query
    assert "line 1, column" in node.reason
