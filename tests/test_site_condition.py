"""A rule page's view of the condition tree (kb/site/condition.py): the top-level AND's parts as
stages, NOT stages and negative comparisons at the top as exclusions, and the budgets that keep
a page small (nodes, values per predicate, characters of text)."""

import json

from kb.model import And, Not, Or, Pred, Unparsed, tree_data
from kb.site import condition
from kb.site.condition import condition_view, shown_text


def _json(tree) -> str:
    return json.dumps(tree_data(tree))


def _pred(field, op, *values, negated=False):
    return {"kind": "pred", "field": field, "op": op, "negated": negated, "computed": False,
            "values": list(values), "more": 0, "children": []}


def test_condition_view_stages_are_the_top_level_and_parts():
    tree = And((Or((Pred("a", "eq", ("1",)), Pred("b", "eq", ("2",)))),
                Not(Pred("c", "contains", ("x",))),
                Pred("user", "eq", ("SYSTEM",), negated=True),
                Unparsed("| odd", "unknown command")))

    view = condition_view(_json(tree))

    assert view.stages == [
        {"kind": "match", "node": {"kind": "or", "children": [_pred("a", "eq", "1"),
                                                              _pred("b", "eq", "2")]}},
        {"kind": "exclusion", "node": _pred("c", "contains", "x")},
        {"kind": "exclusion", "node": _pred("user", "eq", "SYSTEM", negated=True)},
        {"kind": "unparsed", "node": {"kind": "unparsed", "reason": "unknown command",
                                      "text": "| odd", "children": []}},
    ]
    assert (view.hidden_nodes, view.hidden_values) == (0, 0)


def test_condition_view_other_roots_are_one_stage():
    tree = Or((Pred("a", "eq", ("1",)), Not(Pred("b", "eq", ("2",)))))

    view = condition_view(_json(tree))

    assert view.stages == [{"kind": "match", "node": {"kind": "or", "children": [
        _pred("a", "eq", "1"), {"kind": "not", "children": [_pred("b", "eq", "2")]}]}}]


def test_condition_view_of_no_tree_has_no_stages():
    assert condition_view(None).stages == []
    assert condition_view("null").stages == []


def test_condition_view_shows_some_values_and_counts_the_rest(monkeypatch):
    monkeypatch.setattr(condition, "PRED_VALUES", 2)

    view = condition_view(_json(Pred("hash", "in", ("h1", "h2", "h3", "h4"))))

    assert view.stages[0]["node"]["values"] == ["h1", "h2"]
    assert view.stages[0]["node"]["more"] == 2
    assert view.hidden_values == 2


def test_condition_view_stops_at_its_node_budget_and_counts_what_it_leaves_out(monkeypatch):
    monkeypatch.setattr(condition, "TREE_NODES", 3)
    tree = And((Or((Pred("a", "eq", ("1",)), Pred("b", "eq", ("2",)), Pred("c", "eq", ("3",)))),
                Not(Pred("d", "eq", ("4",)))))

    view = condition_view(_json(tree))

    assert view.stages == [{"kind": "match", "node": {"kind": "or", "children": [
        _pred("a", "eq", "1"), _pred("b", "eq", "2")]}}]
    assert view.hidden_nodes == 2  # c, and d (the exclusion stage)


def test_shown_text_cuts_a_long_text_at_a_line_end(monkeypatch):
    monkeypatch.setattr(condition, "TEXT_CHARS", 10)

    assert shown_text("short\n") == "short\n"
    assert shown_text("line one\nline two\n") == "line one\n"
    assert shown_text("x" * 25) == "x" * 10
    assert shown_text(None) == ""
