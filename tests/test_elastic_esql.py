"""ES|QL to predicate rows: small queries written for the tests, whole rows asserted."""

from __future__ import annotations

from kb.model import Unparsed, flatten, unparsed_leaves
from loaders.elastic_esql import parse_esql, split_stages

Row = tuple[str, str, str, bool, bool, bool]


def rows(query: str) -> list[Row]:
    parsed = parse_esql(query)
    return [(r.field, r.op, r.value, r.negated, r.exclusion, r.computed)
            for r in flatten(parsed.condition)]


def test_esql_from_sources_are_not_rows() -> None:
    parsed = parse_esql("FROM logs-endpoint.events.process-*, winlogbeat-* METADATA _id, _index")

    assert parsed.sources == ["logs-endpoint.events.process-*", "winlogbeat-*"]
    assert flatten(parsed.condition) == []


def test_esql_where_operators() -> None:
    assert rows('from a | where x == "1" and y != "2" and z >= 3 and 10 < w') == [
        ("x", "eq", "1", False, False, False),
        ("y", "eq", "2", True, True, False),
        ("z", "gte", "3", False, False, False),
        ("w", "gt", "10", False, False, False),
    ]


def test_esql_like_rlike_and_their_negations() -> None:
    # ES|QL text `"*\\\\temp\\\\*"` is the string `*\\temp\\*`, the like pattern `*\temp\*`
    assert rows(r'from a | where p like "*\\\\temp\\\\*" and q not like ("x*", "*y") '
                r'and r rlike ".*[0-9]{3}" and s not rlike """a\d+"""') == [
        ("p", "contains", "\\temp\\", False, False, False),
        ("q", "starts_with", "x", True, True, False),
        ("q", "ends_with", "y", True, True, False),
        ("r", "regex_match", ".*[0-9]{3}", False, False, False),
        ("s", "regex_match", "a\\d+", True, True, False),
    ]


def test_esql_in_and_null_tests() -> None:
    assert rows('from a | where x in ("p", "q") and y not in ("r") and z is null '
                "and w is not null") == [
        ("x", "in", "p", False, False, False),
        ("x", "in", "q", False, False, False),
        ("y", "eq", "r", True, True, False),
        ("z", "is_not_null", "", True, True, False),
        ("w", "is_not_null", "", False, False, False),
    ]


def test_esql_match_operator_and_functions() -> None:
    assert rows('from a | where x : "cmd" and match(y, "ps", {"fuzziness": 1}) '
                'and starts_with(z, "C:") and ends_with(w, ".exe") '
                'and cidr_match(ip, "10.0.0.0/8")') == [
        ("x", "match", "cmd", False, False, False),
        ("y", "match", "ps", False, False, False),
        ("z", "starts_with", "C:", False, False, False),
        ("w", "ends_with", ".exe", False, False, False),
        ("ip", "cidr", "10.0.0.0/8", False, False, False),
    ]


def test_esql_not_around_a_group_is_one_exclusion() -> None:
    assert rows('from a | where x == "1" and not (y == "2" or z like "*3*")') == [
        ("x", "eq", "1", False, False, False),
        ("y", "eq", "2", True, True, False),
        ("z", "contains", "3", True, True, False),
    ]


def test_esql_case_and_type_wrappers_name_the_field() -> None:
    assert rows('from a | where to_lower(process.name) == "cmd.exe" '
                "and TO_STRING(user.id) == \"0\" and process.pid::long > 4") == [
        ("process.name", "eq", "cmd.exe", False, False, False),
        ("user.id", "eq", "0", False, False, False),
        ("process.pid", "gt", "4", False, False, False),
    ]


def test_esql_eval_and_rename_lead_back_to_the_source_field() -> None:
    assert rows("from a | eval n = to_lower(process.name), p = process.parent.name "
                "| rename user.name as u, host.name = h "
                '| where n == "cmd.exe" and p == "explorer.exe" and u != "SYSTEM"') == [
        ("process.name", "eq", "cmd.exe", False, False, False),
        ("process.parent.name", "eq", "explorer.exe", False, False, False),
        ("user.name", "eq", "SYSTEM", True, True, False),
    ]


def test_esql_computed_columns_are_marked_and_listed() -> None:
    query = ('from a | eval Esql.len = length(process.command_line) '
             '| grok url.original "%{WORD:scheme}://%{DATA:host}" '
             '| where Esql.len > 100 and host == "evil" and length(file.name) < 5')
    parsed = parse_esql(query)

    assert rows(query) == [
        ("Esql.len", "gt", "100", False, False, True),
        ("host", "eq", "evil", False, False, True),
        ("length(file.name)", "lt", "5", False, False, True),
    ]
    assert parsed.computed == ["Esql.len", "host", "length(file.name)"]


def test_esql_filters_on_aggregates_are_thresholds_without_rows() -> None:
    assert rows('from a | where event.action == "logon-failed" '
                "| stats Esql.count = count(*), Esql.users = count_distinct(user.name) "
                "by source.ip "
                '| where Esql.count > 5 and Esql.users >= 3 and source.ip != "127.0.0.1"') == [
        ("event.action", "eq", "logon-failed", False, False, False),
        ("source.ip", "eq", "127.0.0.1", True, True, False),
    ]


def test_esql_time_windows_and_field_comparisons_give_no_rows() -> None:
    assert rows('from a | where @timestamp > now() - 1 day and x == y and z == "1" '
                "| eval w = date_trunc(5m, @timestamp)") == [
        ("z", "eq", "1", False, False, False)]


def test_esql_kql_function_is_read_as_kql() -> None:
    assert rows('from a | where KQL("""event.category:process and not process.name:cmd.exe""")'
                " and process.args is not null") == [
        ("event.category", "eq", "process", False, False, False),
        ("process.name", "eq", "cmd.exe", True, True, False),
        ("process.args", "is_not_null", "", False, False, False),
    ]


def test_esql_backquoted_name_parts_lose_their_quotes() -> None:
    assert rows('from a | where source.`as`.organization.name != "x" '
                "and `a.0.b` is not null") == [
        ("source.as.organization.name", "eq", "x", True, True, False),
        ("a.0.b", "is_not_null", "", False, False, False),
    ]


def test_esql_pipes_in_strings_and_comments_do_not_split_stages() -> None:
    stages = split_stages('from a // a | comment\n| where x == "p|q" /* | */ | keep x')

    assert [text.strip().split()[0] for _, text in stages] == ["from", "where", "keep"]


def test_esql_unknown_command_costs_only_its_stage() -> None:
    parsed = parse_esql('from a | where x == "1" | lookup join hosts on host.name | where y == "2"')

    assert [(r.field, r.value) for r in flatten(parsed.condition)] == [("x", "1"), ("y", "2")]
    (leaf,) = unparsed_leaves(parsed.condition)
    assert isinstance(leaf, Unparsed)
    assert leaf.text.startswith("lookup join")
    assert "line 1" in leaf.reason
