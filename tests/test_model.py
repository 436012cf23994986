"""The condition tree and the one flattener every vendor shares."""

import json

from kb.model import (
    And,
    Not,
    Or,
    Pred,
    PredicateRow,
    RuleRecord,
    Unparsed,
    and_,
    flatten,
    or_,
    tree_data,
    tree_from_data,
)


def row(field, op, value, negated=False, exclusion=False):
    return PredicateRow(field, op, value, negated, exclusion)


def test_flatten_gives_one_row_per_value():
    tree = Pred("Image", "in", ("a.exe", "b.exe"))

    assert flatten(tree) == [row("Image", "in", "a.exe"), row("Image", "in", "b.exe")]


def test_flatten_marks_not_under_and_as_exclusion():
    tree = And((Pred("Image", "ends_with", ("\\cmd.exe",)),
                Not(Or((Pred("User", "eq", ("SYSTEM",)), And((Pred("A", "eq", ("1",)),
                                                               Pred("B", "eq", ("2",)))))))))

    assert flatten(tree) == [
        row("Image", "ends_with", "\\cmd.exe"),
        row("User", "eq", "SYSTEM", negated=True, exclusion=True),
        row("A", "eq", "1", negated=True, exclusion=True),
        row("B", "eq", "2", negated=True, exclusion=True),
    ]


def test_flatten_does_not_mark_not_under_or_as_exclusion():
    tree = Or((Pred("A", "eq", ("1",)), Not(Pred("B", "eq", ("2",)))))

    assert flatten(tree) == [row("A", "eq", "1"), row("B", "eq", "2", negated=True)]


def test_flatten_double_negation_inside_filter_is_positive_but_still_excluded():
    tree = And((Pred("A", "eq", ("1",)), Not(And((Pred("B", "eq", ("2",)),
                                                  Not(Pred("C", "eq", ("3",))))))))

    rows = flatten(tree)

    assert rows[2] == row("C", "eq", "3", negated=False, exclusion=True)


def test_flatten_negative_operator_at_top_level_is_exclusion():
    tree = And((Pred("A", "eq", ("1",)), Pred("user", "eq", ("SYSTEM",), negated=True)))

    assert flatten(tree)[1] == row("user", "eq", "SYSTEM", negated=True, exclusion=True)


def test_flatten_negative_operator_under_or_is_not_exclusion():
    tree = Or((Pred("A", "eq", ("1",)), Pred("user", "eq", ("SYSTEM",), negated=True)))

    assert flatten(tree)[1] == row("user", "eq", "SYSTEM", negated=True, exclusion=False)


def test_flatten_lists_a_row_tested_twice_once():
    tree = Or((Pred("A", "eq", ("1",)), And((Pred("A", "eq", ("1",)), Pred("B", "eq", ("2",))))))

    assert flatten(tree) == [row("A", "eq", "1"), row("B", "eq", "2")]


def test_and_or_helpers_flatten_nesting_and_unwrap_single_children():
    a, b, c = (Pred(x, "eq", ("1",)) for x in "abc")

    assert and_(a) == a
    assert and_(and_(a, b), c) == And((a, b, c))
    assert or_(or_(a, b), c) == Or((a, b, c))


def test_finish_marks_partial_when_some_logic_is_unparsed():
    record = RuleRecord("x", "1", "t", "p", "l",
                        condition=And((Pred("A", "eq", ("1",)), Unparsed("???", "odd"))))

    record.finish()

    assert record.parse_status == "partial"
    assert [p.kind for p in record.problems] == ["unparsed"]
    assert record.predicates == [row("A", "eq", "1")]


def test_finish_marks_none_when_nothing_parsed():
    record = RuleRecord("x", "1", "t", "p", "l", condition=Unparsed("???", "odd"))

    assert record.finish().parse_status == "none"


def test_finish_keeps_no_query_status():
    record = RuleRecord("x", "1", "t", "p", "l", parse_status="no_query")

    assert record.finish().parse_status == "no_query"


def test_tree_data_encodes_every_node_as_plain_data():
    tree = And((Pred("Image", "ends_with", ("\\w3wp.exe",)),
                Or((Pred("A", "in", ("1", "2")), Unparsed("x |> y", "odd pipe"))),
                Not(Pred("ParentImage", "eq", ("svc",), negated=True, computed=True))))

    data = tree_data(tree)

    assert data == {"and": [
        {"pred": {"field": "Image", "op": "ends_with", "values": ["\\w3wp.exe"],
                  "negated": False, "computed": False}},
        {"or": [{"pred": {"field": "A", "op": "in", "values": ["1", "2"], "negated": False,
                          "computed": False}},
                {"unparsed": {"text": "x |> y", "reason": "odd pipe"}}]},
        {"not": {"pred": {"field": "ParentImage", "op": "eq", "values": ["svc"],
                          "negated": True, "computed": True}}},
    ]}
    assert json.loads(json.dumps(data)) == data
    assert tree_from_data(data) == tree


def test_tree_data_of_no_tree_is_none():
    assert tree_data(None) is None
    assert tree_from_data(None) is None
