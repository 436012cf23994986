"""`kb site` on the whole Sigma snapshot with ATT&CK: every batch answer held equal to the canned
guide and drill-down queries on real data, no broken link among some 13,000 pages, pages that
stay small, and the site driven in headless Chromium (helpers in test_site_browser.py). The
T1505 page's screenshot is kept in artifacts/ and, for the docs, in docs/images/t1505.png
(written when missing, or again when KB_SITE_DOCS_IMAGE=1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import test_site_browser as shared
from conftest import ARCHIVES, ATTACK_BUNDLE, CORPORA
from engines import normalised
from test_site_browser import (
    ARTIFACTS,
    Watched,
    assert_shows_guide,
    guide_rule_count,
    matrix_count,
    screenshot,
    search_and_open,
    served,
)

from kb.build import build
from kb.graph.ladybug_backend import LadybugBackend
from kb.queries import guide, run_query
from kb.site import build_site, drilldowns, paths
from kb.site.catalogue import Catalogue
from kb.site.check import broken_links
from kb.site.data import load_site_data

pytestmark = pytest.mark.corpus
browser = shared.browser  # the fixtures, shared
tab = shared.tab

DOCS_IMAGE = Path(__file__).resolve().parents[1] / "docs" / "images" / "t1505.png"
TECHNIQUES = ("T1505", "T1505.003", "T1059", "T1059.001", "T1003", "T1003.001", "T1190",
              "T1562.001", "T1547.001", "T1218")
LARGEST_PAGE = 400_000  # bytes


@pytest.fixture(scope="module")
def sigma(tmp_path_factory, attack_catalog):
    folder = tmp_path_factory.mktemp("sigma-site")
    backend = LadybugBackend(folder / "kb.lbug")
    build([CORPORA / ARCHIVES["sigma"]], ATTACK_BUNDLE, backend)
    report = build_site(backend, folder / "site")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "site-sigma-report.json").write_text(json.dumps(report.as_dict(), indent=2))
    yield backend, folder / "site", report
    backend.close()


@pytest.fixture(scope="module")
def data(sigma):
    return load_site_data(sigma[0])


@pytest.fixture(scope="module")
def base(sigma):
    with served(sigma[1]) as url:
        yield url


def test_site_corpus_writes_every_page_and_pages_stay_small(sigma):
    backend, _, report = sigma
    rules = backend.query("MATCH (r:Rule) RETURN count(r) AS n")[0]["n"]

    assert report.pages["rule"] == rules == 3952
    assert report.pages["technique"] >= 690
    assert report.pages["indicator"] >= 3000
    assert report.largest[1] < LARGEST_PAGE
    assert report.seconds < 120  # a regression guard; the measured figure is far below


def test_site_corpus_has_no_broken_link(sigma):
    _, site, _ = sigma

    assert broken_links(site) == []


def test_site_corpus_guides_are_kb_guide(sigma, data):
    backend, _, _ = sigma

    for technique in TECHNIQUES:
        expected = guide(backend, technique).as_dict()
        got = drilldowns.technique_guide(data, technique).as_dict()
        for value in (expected, got):
            for rows in value["rules_by_vendor"].values():
                for row in rows:
                    row["techniques"] = sorted(row["techniques"])
        assert got == expected, technique


def test_site_corpus_drilldowns_are_the_queries(sigma, data):
    backend, _, _ = sigma
    catalogue = Catalogue.build(data)
    busiest = sorted(catalogue.indicators.items(), key=lambda item: (-item[1], item[0]))[:5]
    fields = sorted(catalogue.fields, key=lambda name: (-len(catalogue.fields[name]), name))

    for name in [*fields[:3], fields[len(fields) // 2]]:
        expected = run_query(backend, "field_drilldown", field=name)
        assert normalised(catalogue.fields[name]) == normalised(expected), name
    for key in ("sigma:windows/process_creation", "sigma:webserver"):
        expected = run_query(backend, "event_type_drilldown", event_type=key)
        assert normalised(catalogue.event_types[key]) == normalised(expected), key
    for (field, op, value), count in busiest:
        expected = run_query(backend, "indicator_drilldown", field=field, op=op, value=value)
        rows = catalogue.indicator_index.drilldown((field, op, value))
        assert normalised(rows) == normalised(expected)
        assert len(rows) == count
    for uid in sorted(data.rules)[::400]:
        assert catalogue.neighbours(uid) == run_query(backend, "rule_neighbours", uid=uid,
                                                      limit=drilldowns.NEIGHBOURS), uid


def test_site_corpus_search_opens_t1505_with_its_guide(sigma, base, tab):
    backend, _, _ = sigma

    search_and_open(tab, base, "T1505", "T1505 Server Software Component")

    assert tab.tab.url == f"{base}/techniques/T1505.html"
    assert tab.tab.locator("#rule-count").inner_text() == "47"
    assert_shows_guide(tab, backend, "T1505")
    targets = [ARTIFACTS / "t1505.png"]
    if not DOCS_IMAGE.exists() or os.environ.get("KB_SITE_DOCS_IMAGE") == "1":
        targets.append(DOCS_IMAGE)
    screenshot(tab, *targets)
    assert tab.problems == []


def test_site_corpus_matrix_counts_are_the_guide_counts(sigma, base, tab):
    backend, _, _ = sigma
    tab.open(f"{base}/index.html")

    for technique in ("T1505", "T1059", "T1003.001"):
        assert matrix_count(tab, technique) == guide_rule_count(backend, technique)
    tab.tab.select_option("#f-platform", "linux")
    assert matrix_count(tab, "T1059") == guide_rule_count(backend, "T1059", platform="linux")
    assert tab.problems == []


def test_site_corpus_pages_log_no_error(sigma, base, tab: Watched):
    backend, site, _ = sigma
    t1505 = guide(backend, "T1505")
    pages = ["index.html", paths.technique_path("T1505"), paths.technique_path("T1059"),
             *(paths.rule_path(row["uid"]) for row in t1505.rules_by_vendor["sigma"][:10]),
             paths.field_path(t1505.fields[0].field),
             paths.event_type_path(t1505.events[0]["event_type"])]
    pages += [path.relative_to(site).as_posix()
              for path in sorted((site / "indicators").glob("*.html"))[:10]]

    for page in pages:
        tab.open(f"{base}/{page}")

    assert tab.problems == []
