"""Sigma rules to predicate rows: every modifier, selector and the exclusion rule."""

import textwrap

import pytest

from kb.model import PredicateRow
from kb.sources import RuleFile
from loaders import sigma

HEADER = """\
title: Test rule
id: 00000000-0000-0000-0000-000000000001
status: test
tags:
    - attack.persistence
    - attack.t1505.003
logsource:
    category: process_creation
    product: windows
"""


def parse(detection: str, header: str = HEADER):
    text = header + "detection:\n" + textwrap.indent(textwrap.dedent(detection), "    ")
    [record] = sigma.parse_file(RuleFile("rules/test.yml", text))
    return record


def rows(detection: str):
    return [(r.field, r.op, r.value, r.negated, r.exclusion) for r in parse(detection).predicates]


def test_sigma_metadata_techniques_event_types_and_status():
    record = parse("sel:\n    Image: x\ncondition: sel\n")

    assert record.uid == "sigma:00000000-0000-0000-0000-000000000001"
    assert record.techniques == ("T1505.003",)
    assert record.event_types == ("sigma:windows/process_creation",)
    assert record.platforms == ("windows",)
    assert (record.status, record.deprecated, record.parse_status) == ("test", False, "full")


def test_sigma_single_value_is_eq_and_list_is_in():
    assert rows("sel:\n    Image: C:\\x.exe\ncondition: sel\n") == [
        ("Image", "eq", "C:\\x.exe", False, False)]
    assert rows("sel:\n    Image:\n        - a\n        - b\ncondition: sel\n") == [
        ("Image", "in", "a", False, False), ("Image", "in", "b", False, False)]


@pytest.mark.parametrize(("modifier", "op", "value"), [
    ("contains", "contains", "x"),
    ("startswith", "starts_with", "x"),
    ("endswith", "ends_with", "x"),
])
def test_sigma_string_modifiers_fold_into_op(modifier, op, value):
    assert rows(f"sel:\n    CommandLine|{modifier}: x\ncondition: sel\n") == [
        ("CommandLine", op, value, False, False)]


def test_sigma_plain_wildcards_fold_and_inner_wildcards_stay():
    assert rows("sel:\n    A: '*x*'\n    B: 'x*'\n    C: '*x'\n    D: 'a*b'\n    E: 'a?c'\n"
                "    F: '*'\ncondition: sel\n") == [
        ("A", "contains", "x", False, False), ("B", "starts_with", "x", False, False),
        ("C", "ends_with", "x", False, False), ("D", "wildcard", "a*b", False, False),
        ("E", "wildcard", "a?c", False, False), ("F", "is_not_null", "", False, False)]


def test_sigma_contains_with_inner_wildcard_writes_outer_stars():
    assert rows("sel:\n    A|contains: 'a*b'\ncondition: sel\n") == [
        ("A", "wildcard", "*a*b*", False, False)]


def test_sigma_escaped_wildcard_and_backslashes_are_unescaped():
    assert rows("sel:\n    A: 'C:\\\\Windows\\\\x'\ncondition: sel\n") == [
        ("A", "eq", "C:\\Windows\\x", False, False)]


def test_sigma_all_modifier_gives_one_row_per_value():
    assert rows("sel:\n    A|contains|all:\n        - x\n        - y\ncondition: sel\n") == [
        ("A", "contains", "x", False, False), ("A", "contains", "y", False, False)]


def test_sigma_regex_and_flags_keep_the_pattern_verbatim():
    assert rows("sel:\n    A|re: '^a.*b$'\n    B|re|i|m|s: 'x+'\ncondition: sel\n") == [
        ("A", "regex_match", "^a.*b$", False, False), ("B", "regex_match", "x+", False, False)]


def test_sigma_regex_refused_by_re2_still_loads():
    record = parse("sel:\n    A|re: '(?<=foo)bar'\ncondition: sel\n")

    assert record.parse_status == "full"
    assert [(p.field, p.op, p.value) for p in record.predicates] == [
        ("A", "regex_match", "(?<=foo)bar")]
    assert [p.kind for p in record.problems] == ["regex"]


def test_sigma_cidr_exists_and_null():
    assert rows("sel:\n    Ip|cidr: 10.0.0.0/8\n    B|exists: true\n    C|exists: false\n"
                "    D: null\ncondition: sel\n") == [
        ("Ip", "cidr", "10.0.0.0/8", False, False), ("B", "is_not_null", "", False, False),
        ("C", "is_not_null", "", True, True), ("D", "is_not_null", "", True, True)]


def test_sigma_windash_and_cased_change_neither_op_nor_value():
    assert rows("sel:\n    A|windash|contains: ' -enc '\n    B|cased: Foo\ncondition: sel\n") == [
        ("A", "contains", " -enc ", False, False), ("B", "eq", "Foo", False, False)]


def test_sigma_base64_modifiers_match_encoded_values():
    assert rows("sel:\n    A|base64: 'abc'\ncondition: sel\n") == [
        ("A", "eq", "YWJj", False, False)]
    assert rows("sel:\n    A|base64offset|contains: 'abc'\ncondition: sel\n") == [
        ("A", "contains", "YWJj", False, False), ("A", "contains", "FiY", False, False),
        ("A", "contains", "hYm", False, False)]


@pytest.mark.parametrize(("modifier", "op", "negated"), [
    ("gt", "gt", False), ("gte", "gte", False), ("lt", "lt", False), ("lte", "lte", False),
])
def test_sigma_comparisons(modifier, op, negated):
    assert rows(f"sel:\n    Size|{modifier}: 100\ncondition: sel\n") == [
        ("Size", op, "100", negated, negated)]


def test_sigma_neq_negates_the_item():
    assert rows("sel:\n    A: 1\n    Size|neq: 100\ncondition: sel\n") == [
        ("A", "eq", "1", False, False), ("Size", "eq", "100", True, True)]


def test_sigma_fieldref_gives_no_row():
    assert rows("sel:\n    A: x\n    B|fieldref: C\ncondition: sel\n") == [
        ("A", "eq", "x", False, False)]


def test_sigma_expand_placeholder_is_in_row_with_token():
    assert rows("sel:\n    User|expand: '%admins%'\ncondition: sel\n") == [
        ("User", "in", "%admins%", False, False)]


def test_sigma_keywords_are_fieldless():
    assert rows("keywords:\n    - 'evil'\n    - '*bad thing*'\ncondition: keywords\n") == [
        ("", "keyword", "evil", False, False), ("", "keyword", "bad thing", False, False)]


def test_sigma_selectors_one_of_all_of_and_them():
    detection = ("sel_a:\n    A: 1\nsel_b:\n    B: 2\nfilter_x:\n    C: 3\n"
                 "condition: 1 of sel_* and not all of filter_*\n")
    assert rows(detection) == [("A", "eq", "1", False, False), ("B", "eq", "2", False, False),
                               ("C", "eq", "3", True, True)]
    assert len(rows("a:\n    A: 1\nb:\n    B: 2\ncondition: all of them\n")) == 2


def test_sigma_not_under_or_is_not_exclusion():
    assert rows("a:\n    A: 1\nb:\n    B: 2\ncondition: a or not b\n") == [
        ("A", "eq", "1", False, False), ("B", "eq", "2", True, False)]


def test_sigma_list_of_maps_is_or_of_ands():
    record = parse("sel:\n    - A: 1\n      B: 2\n    - C: 3\ncondition: sel\n")

    assert [(r.field, r.value) for r in record.predicates] == [("A", "1"), ("B", "2"), ("C", "3")]


def test_sigma_pipe_condition_keeps_its_selection_and_leaves_the_aggregation_unparsed():
    record = parse("sel:\n    A: 1\ncondition: sel | count() by B > 5\n")

    assert record.parse_status == "partial"
    assert [(r.field, r.op, r.value) for r in record.predicates] == [("A", "eq", "1")]
    assert [(p.kind, p.message) for p in record.problems] == [
        ("unparsed", "aggregation in the deprecated pipe syntax: count() by B > 5")]


def test_sigma_unreadable_selection_is_unparsed_alone():
    record = parse("a:\n    A|nosuchmodifier: 1\nb:\n    B: 2\ncondition: a and b\n")

    assert record.parse_status == "partial"
    assert [(r.field, r.value) for r in record.predicates] == [("B", "2")]
    assert record.problems[0].message.startswith("unreadable selection a: ")


def test_sigma_condition_naming_a_missing_selection_is_unparsed_alone():
    record = parse("a:\n    A: 1\ncondition: a and not missing\n")

    assert record.parse_status == "partial"
    assert [(r.field, r.value) for r in record.predicates] == [("A", "1")]
    assert record.problems[0].message == (
        "the condition names a selection the detection does not define: missing")


def test_sigma_unreadable_condition_is_unparsed():
    record = parse("a:\n    A: 1\ncondition: a and (\n")

    assert record.parse_status == "none"
    assert record.problems[0].message.startswith("unreadable condition: ")


def test_sigma_bad_yaml_names_the_file_and_line():
    [record] = sigma.parse_file(RuleFile("rules/bad.yml", "title: x\ndetection: [unclosed\n"))

    assert record.parse_status == "none"
    assert record.uid == "sigma:rules/bad.yml"
    assert record.problems[0].kind == "syntax"
    assert record.problems[0].line == 3


def test_sigma_unclosed_quote_names_the_line_it_opened_on():
    text = "title: x\ndetection:\n    sel:\n        A: 'open\n    condition: sel\n"

    [record] = sigma.parse_file(RuleFile("rules/quote.yml", text))

    assert record.problems[0].line == 6
    assert record.problems[0].message == ("not valid YAML: while scanning a quoted scalar "
                                          "(line 4): found unexpected end of stream")


def test_sigma_control_character_names_its_line_and_column():
    [record] = sigma.parse_file(RuleFile("rules/bin.yml", "title: x\nlevel: \x07\n"))

    assert (record.problems[0].line, record.problems[0].column) == (2, 8)
    assert record.problems[0].message.startswith("not valid YAML: unacceptable character #x0007")


def test_sigma_correlation_rule_keeps_its_references():
    text = ("title: Many failures\nid: c0000000-0000-0000-0000-000000000001\n"
            "correlation:\n    type: event_count\n    rules:\n        - failed_logon\n"
            "    group-by:\n        - User\n    timespan: 5m\n    condition:\n        gte: 10\n")

    [record] = sigma.parse_file(RuleFile("rules/corr.yml", text))

    assert record.parse_status == "no_query"
    assert record.properties["correlation"]["rules"] == ["failed_logon"]


def test_sigma_filter_rule_rows_are_exclusions():
    text = ("title: Exclude admin tools\nid: f0000000-0000-0000-0000-000000000001\n"
            "logsource:\n    category: process_creation\n    product: windows\n"
            "filter:\n    rules:\n        - 00000000-0000-0000-0000-000000000001\n"
            "    selection:\n        Image|endswith: '\\admin.exe'\n    condition: selection\n")

    [record] = sigma.parse_file(RuleFile("rules/filter.yml", text))

    assert record.properties["applies_to"] == ["00000000-0000-0000-0000-000000000001"]
    assert record.predicates == [PredicateRow("Image", "ends_with", "\\admin.exe", True, True)]
