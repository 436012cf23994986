"""The whole SigmaHQ snapshot through the Sigma loader: parse figures asserted as floors."""

from collections import Counter

import pytest
from conftest import corpus_source

from loaders import sigma

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def records():
    source = corpus_source("sigma")
    paths = sigma.rule_paths(source)
    return [r for path in paths for r in sigma.parse_file(source.rule_file(path))]


def test_sigma_corpus_every_file_becomes_a_record(records):
    assert len(records) == 3952


def test_sigma_corpus_parse_floors(records):
    active = [r for r in records if not r.deprecated]
    status = Counter(r.parse_status for r in active)

    assert len(active) == 3780
    assert status["full"] >= 3780
    assert status["full"] / len(active) >= 0.99


def test_sigma_corpus_deprecated_rules_are_kept_and_marked(records):
    deprecated = [r for r in records if r.deprecated]

    status = Counter(r.parse_status for r in deprecated)

    assert len(deprecated) == 172
    assert status["full"] >= 171
    assert status["none"] == 0  # the one left partial counts with the deprecated pipe syntax


def test_sigma_corpus_every_active_rule_has_event_types_and_predicates(records):
    active = [r for r in records if not r.deprecated]
    without_rows = [r.path for r in active if not r.predicates]

    assert all(r.event_types for r in active)
    # The one rule left compares two fields (|fieldref), which gives no row by design.
    assert without_rows == ["rules/windows/file/file_delete/file_delete_win_delete_own_image.yml"]
