"""Normalisation over all six pinned snapshots together: figures asserted as floors.

The snapshots are parsed once (on both cores, the way `kb build` does), normalised, and
measured: predicate rows on a canonical field (keywords and computed columns aside), rules
linked to an event type and to a taxonomy category, per vendor and overall.
"""

from collections import Counter

import pytest
from conftest import corpus_source

from kb.build import OpenSource, parse_sources
from kb.events import classify
from kb.normalize import normalise
from loaders import LOADER_MODULES, get_loader

pytestmark = pytest.mark.corpus

# Measured on the pinned snapshots; floors sit a little below so they can only rise.
MAPPED_FLOORS = {"sigma": 0.99, "elastic": 0.98, "splunk": 0.91, "sentinel": 0.84,
                 "chronicle": 0.96, "panther": 1.0}
LINKED_FLOORS = {"sigma": 1.0, "elastic": 0.95, "splunk": 0.98, "sentinel": 0.99,
                 "chronicle": 0.83, "panther": 0.99}


@pytest.fixture(scope="module")
def records():
    opened = []
    for vendor in LOADER_MODULES:
        loader = get_loader(vendor)
        source = corpus_source(vendor)
        opened.append(OpenSource(source=source, loader=loader, paths=loader.rule_paths(source)))
    parsed = parse_sources(opened, None)
    for record in parsed:
        normalise(record)
    return parsed


def _mappable(records):
    return [row for record in records for row in record.predicates
            if row.field and not row.computed]


def _mapped_share(records):
    rows = _mappable(records)
    return sum(1 for row in rows if row.canonical_field) / len(rows)


def test_normalise_corpus_maps_95_percent_of_rows(records):
    assert _mapped_share(records) >= 0.96


@pytest.mark.parametrize("vendor", sorted(MAPPED_FLOORS))
def test_normalise_corpus_mapped_share_per_vendor(records, vendor):
    mine = [r for r in records if r.vendor == vendor]

    assert _mapped_share(mine) >= MAPPED_FLOORS[vendor]


def test_normalise_corpus_links_95_percent_of_rules_to_event_types(records):
    linked = sum(1 for r in records if r.event_types)
    categorised = sum(1 for r in records if any(classify(k) for k in r.event_types))

    assert linked / len(records) >= 0.97
    assert categorised / len(records) >= 0.96


@pytest.mark.parametrize("vendor", sorted(LINKED_FLOORS))
def test_normalise_corpus_linked_share_per_vendor(records, vendor):
    mine = [r for r in records if r.vendor == vendor]

    assert sum(1 for r in mine if r.event_types) / len(mine) >= LINKED_FLOORS[vendor]


def test_normalise_corpus_t1505_fields_are_all_canonical(records):
    t1505 = [r for r in records if not r.deprecated
             and any(t.split(".")[0] == "T1505" for t in r.techniques)]
    unmapped = Counter((r.vendor, row.field) for r in t1505 for row in _mappable([r])
                       if not row.canonical_field)

    assert len(t1505) >= 100
    assert unmapped == Counter()


def test_normalise_corpus_unmapped_fields_are_few(records):
    unmapped = Counter()
    for record in records:
        unmapped.update({(record.vendor, row.field) for row in _mappable([record])
                         if not row.canonical_field})

    assert max(unmapped.values()) <= 12
