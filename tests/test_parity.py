"""Parity of the engines on a real knowledge base: the whole Sigma snapshot with ATT&CK, built by
`kb.build.build` into LadybugDB and into Neo4j, must answer every canned query alike.

Each canned query runs with parameter sets taken from the graph itself: the 20 techniques with
the most rules (and a few more), a sample of rules, the busiest fields, indicators and event
types, and its defaults. Results are compared after removing only what kb does not promise:
the order inside collected lists and whole numbers typed as floats. Row order is compared as
is. `kb_info` differs by the build's time and id, and nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ARCHIVES, ATTACK_BUNDLE, CORPORA
from engines import normalised

from kb.build import build
from kb.graph.ladybug_backend import LadybugBackend
from kb.queries import canned_queries, run_query

pytestmark = [pytest.mark.corpus, pytest.mark.neo4j]

BUSIEST_TECHNIQUES = 20
# Besides the busiest: a parent with many sub-techniques, and one sub-technique of it.
MORE_TECHNIQUES = ("T1505", "T1505.003", "T1003", "T1071")
RULE_SAMPLE = 40
TOP_VALUES = 10
PER_BUILD = {"built_at", "build_id"}


@pytest.fixture(scope="module")
def engines(tmp_path_factory, attack_catalog, neo4j_backend):
    """The Sigma snapshot built into both engines (the second build reads the parse cache)."""
    sources = [CORPORA / ARCHIVES["sigma"]]
    ladybug = LadybugBackend(tmp_path_factory.mktemp("parity") / "kb.lbug")
    build(sources, ATTACK_BUNDLE, ladybug)
    build(sources, ATTACK_BUNDLE, neo4j_backend)
    yield ladybug, neo4j_backend
    ladybug.close()


@pytest.fixture(scope="module")
def samples(engines) -> dict[str, list[Any]]:
    """Parameter values taken from the LadybugDB graph."""
    ladybug, _ = engines
    return {
        "technique": techniques(ladybug),
        "uid": rule_sample(ladybug),
        "field": column(ladybug, "MATCH (r:Rule)-[:FILTERS]->(f:Field) "
                        "RETURN f.name AS value, count(DISTINCT r) AS n "
                        f"ORDER BY n DESC, value LIMIT {TOP_VALUES}"),
        "event_type": column(ladybug, "MATCH (r:Rule)-[:OBSERVES]->(e:EventType) "
                             "RETURN e.key AS value, count(DISTINCT r) AS n "
                             f"ORDER BY n DESC, value LIMIT {TOP_VALUES}"),
        "indicator": ladybug.query(
            "MATCH (r:Rule)-[u:USES]->(v:Value) "
            "RETURN v.field AS field, u.op AS op, v.value AS value, count(DISTINCT r) AS n "
            f"ORDER BY n DESC, field, op, value LIMIT {TOP_VALUES}"),
    }


def techniques(backend) -> list[str]:
    busiest = column(backend, "MATCH (r:Rule)-[:DETECTS]->(t:Technique) "
                     "WHERE r.deprecated = false RETURN t.id AS value, count(*) AS n "
                     f"ORDER BY n DESC, value LIMIT {BUSIEST_TECHNIQUES}")
    return busiest + [t for t in MORE_TECHNIQUES if t not in busiest]


def rule_sample(backend) -> list[str]:
    """Every n-th rule by uid, and the rules with the most predicate rows."""
    uids = column(backend, "MATCH (r:Rule) RETURN r.uid AS value ORDER BY value")
    step = max(len(uids) // RULE_SAMPLE, 1)
    largest = column(backend, "MATCH (r:Rule)-[u:USES]->(:Value) RETURN r.uid AS value, "
                     "count(u) AS n ORDER BY n DESC, value LIMIT 5")
    return list(dict.fromkeys(uids[::step] + largest))


def column(backend, text: str) -> list[Any]:
    return [row["value"] for row in backend.query(text)]


def param_sets(name: str, samples: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The parameter sets a query runs with: its defaults, then values from the graph for the
    parameters it takes."""
    keys = set(canned_queries()[name].defaults)
    sets: list[dict[str, Any]] = [{}]
    if "technique" in keys:
        sets += [{"technique": t} for t in samples["technique"]]
        if "include_deprecated" in keys:
            sets += [{"technique": t, "include_deprecated": True}
                     for t in samples["technique"][:5]]
        if "include_subtechniques" in keys:
            sets += [{"technique": t, "include_subtechniques": False}
                     for t in samples["technique"][:5]]
    if "uid" in keys:
        sets += [{"uid": uid} for uid in samples["uid"]]
    if {"field", "op", "value"} <= keys:
        sets += [{"field": i["field"], "op": i["op"], "value": i["value"]}
                 for i in samples["indicator"]]
    elif "field" in keys:
        sets += [{"field": field} for field in samples["field"]]
    if "event_type" in keys:
        sets += [{"event_type": key} for key in samples["event_type"]]
    if "vendor" in keys and "other" not in keys:
        sets.append({"vendor": "sigma"})
    return sets


@pytest.mark.parametrize("name", sorted(canned_queries()))
def test_parity_canned_query_answers_alike(engines, samples, name):
    ladybug, neo4j = engines
    differing, answered = [], 0

    for params in param_sets(name, samples):
        expected = without_per_build(name, run_query(ladybug, name, **params))
        got = without_per_build(name, run_query(neo4j, name, **params))
        answered += bool(expected)
        if normalised(got) != normalised(expected):
            differing.append((params, first_difference(got, expected)))

    assert not differing, f"{name}: {len(differing)} parameter sets differ: {differing[:3]}"
    if "other" not in canned_queries()[name].defaults:  # two vendors: none in Sigma alone
        assert answered, f"{name}: no parameter set gave rows on the Sigma snapshot"


def test_parity_samples_reach_the_busiest_techniques(samples):
    assert len(samples["technique"]) >= BUSIEST_TECHNIQUES
    assert len(samples["uid"]) >= RULE_SAMPLE


def without_per_build(name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if name != "kb_info":
        return rows
    return [row for row in rows if row["key"] not in PER_BUILD]


def first_difference(got: list[dict], expected: list[dict]) -> str:
    got, expected = normalised(got), normalised(expected)
    if len(got) != len(expected):
        return f"{len(got)} rows on Neo4j, {len(expected)} on LadybugDB"
    for index, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        if mine != theirs:
            return f"row {index}: Neo4j {mine} | LadybugDB {theirs}"
    return "same rows"
