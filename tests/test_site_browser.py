"""The demo catalogue (`kb site`) driven in headless Chromium: the index loads, its search finds
T1505 and leads to the technique's page, the filters recount the matrix as `kb guide` counts,
the page shows the guide's tables, a rule page shows its text and condition stages, and no page
logs a console error or fails a request.

Chromium is Debian's `chromium` package (/usr/bin/chromium), driven by Playwright for Python
with a fresh, empty profile; the site is served by http.server on 127.0.0.1 (and once read
from a file:// URL). Screenshots go to artifacts/ (git-ignored). The Sigma snapshot's site is
driven in test_site_corpus.py, which shares the helpers here.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import pytest

from kb.build import build
from kb.demo import demo_attack_bundle, demo_sources
from kb.graph.backend import Backend
from kb.graph.ladybug_backend import LadybugBackend
from kb.queries import guide
from kb.site import build_site

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
GUIDE_SECTIONS = ("events", "fields", "indicators", "exclusions")

# --- helpers, shared with test_site_corpus.py ------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Headless Chromium with a new, empty profile folder, for one test module (Playwright's
    synchronous API allows one running instance at a time)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM),
            headless=True, args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
        yield context
        context.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """The folder served over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Watched:
    """A browser tab that remembers console errors, script errors and failed requests."""

    def __init__(self, tab) -> None:
        self.tab = tab
        self.problems: list[str] = []
        tab.on("console", self._console)
        tab.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        tab.on("requestfailed", lambda request: self.problems.append(
            f"request failed: {request.url}"))
        tab.on("response", self._response)

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def open(self, url: str) -> None:
        self.tab.goto(url)
        self.tab.wait_for_load_state("load")


@pytest.fixture
def tab(browser) -> Iterator[Watched]:
    page = browser.new_page()
    yield Watched(page)
    page.close()


def matrix_count(watched: Watched, technique: str) -> int:
    """The count a technique's cell shows (its first cell: a technique may sit in several
    tactics)."""
    cell = watched.tab.locator(f'#matrix .cell[data-id="{technique}"]').first
    return int(cell.locator(".count").text_content())


def guide_rule_count(backend: Backend, technique: str, **filters: str) -> int:
    result = guide(backend, technique, **filters)
    return sum(len(rows) for rows in result.rules_by_vendor.values())


def search_and_open(watched: Watched, base: str, query: str, link_text: str) -> None:
    """Type into the index's search, then follow the result named `link_text`."""
    watched.open(f"{base}/index.html")
    watched.tab.fill("#search", query)
    result = watched.tab.locator("#results a", has_text=link_text).first
    result.wait_for(state="visible")
    result.click()
    watched.tab.wait_for_load_state("load")


def assert_shows_guide(watched: Watched, backend: Backend, technique: str) -> None:
    """The technique page's tables hold as many rows as `kb guide` answers."""
    expected = guide(backend, technique)
    tab = watched.tab
    assert tab.locator("#rule-count").inner_text() == str(expected.technique["rules"])
    for section in GUIDE_SECTIONS:
        assert tab.locator(f"#{section} tbody tr").count() == len(getattr(expected, section)), \
            section
    for vendor, rows in expected.rules_by_vendor.items():
        assert tab.locator(f'#rules table[data-vendor="{vendor}"] tbody tr').count() == len(rows)


def screenshot(watched: Watched, *targets: Path) -> None:
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        watched.tab.screenshot(path=str(target))


# --- the demo catalogue -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, Path]]:
    folder = tmp_path_factory.mktemp("demo-site")
    backend = LadybugBackend(folder / "demo.lbug")
    build(demo_sources(), demo_attack_bundle(), backend)
    build_site(backend, folder / "site")
    yield backend, folder / "site"
    backend.close()


@pytest.fixture(scope="module")
def base(demo) -> Iterator[str]:
    with served(demo[1]) as url:
        yield url


def test_site_browser_search_finds_t1505_and_opens_its_page(base, tab):
    search_and_open(tab, base, "T1505", "T1505 Server Software Component")

    assert tab.tab.url == f"{base}/techniques/T1505.html"
    assert tab.tab.locator("h1").inner_text() == "T1505 Server Software Component"
    assert tab.problems == []


def test_site_browser_search_by_name_lights_up_matching_cells(base, tab):
    tab.open(f"{base}/index.html")

    tab.tab.fill("#search", "web shell")

    assert tab.tab.locator("#results a").all_inner_texts() == ["T1505.003 Web Shell"]
    assert tab.tab.locator("#matrix .cell.hit").count() == 1
    assert tab.tab.locator('#matrix .cell.hit[data-id="T1505.003"]').is_visible()
    assert tab.tab.locator('#matrix .cell[data-id="T1059"]').get_attribute(
        "class").split()[-1] == "dim"


def test_site_browser_t1505_page_shows_the_guide_tables(demo, base, tab):
    backend, _ = demo

    tab.open(f"{base}/techniques/T1505.html")

    assert_shows_guide(tab, backend, "T1505")
    screenshot(tab, ARTIFACTS / "t1505-demo.png")
    assert tab.problems == []


@pytest.mark.parametrize(("control", "value", "filters"), [
    ("#f-vendor", "sigma", {"vendor": "sigma"}),
    ("#f-vendor", "splunk", {"vendor": "splunk"}),
    ("#f-platform", "windows", {"platform": "windows"}),
    ("#f-domain", "endpoint", {"domain": "endpoint"}),
])
def test_site_browser_filters_recount_the_matrix_as_the_guide(demo, base, tab, control, value,
                                                              filters):
    backend, _ = demo
    tab.open(f"{base}/index.html")
    assert matrix_count(tab, "T1505") == guide_rule_count(backend, "T1505") == 8

    tab.tab.select_option(control, value)

    for technique in ("T1505", "T1505.003", "T1059"):
        assert matrix_count(tab, technique) == guide_rule_count(backend, technique, **filters)
    assert tab.problems == []


def test_site_browser_colours_by_vendors_and_shows_sub_techniques(demo, base, tab):
    backend, _ = demo
    tab.open(f"{base}/index.html")
    sub = tab.tab.locator('#matrix .cell[data-id="T1505.003"]')
    assert not sub.is_visible()

    tab.tab.select_option("#f-colour", "vendors")
    tab.tab.locator('.tech:has(> .cell[data-id="T1505"]) > .toggle').click()

    assert matrix_count(tab, "T1505") == len(guide(backend, "T1505").rules_by_vendor) == 6
    assert sub.is_visible()
    assert tab.tab.locator("#legend .unit").inner_text() == "vendors"


def test_site_browser_rule_page_shows_its_text_and_condition_tree(base, tab):
    uid = "sigma/5b0e3c1a-7d64-4f0e-9a51-3e2b8c7d1f01"
    written = resources.files("kb.demo").joinpath(
        "sigma", "rules", "web", "web_shell_child_shell.yml").read_text(encoding="utf-8")

    tab.open(f"{base}/rules/{uid}.html")

    text = tab.tab.locator("#text pre.rule-text")
    assert text.is_visible()
    assert text.inner_text().rstrip("\n") == written.rstrip("\n")
    stages = tab.tab.locator("#condition ol.stages > li")
    assert stages.count() == 3
    assert [stages.nth(i).get_attribute("class") for i in range(3)] == [
        "stage match", "stage match", "stage exclusion"]
    assert stages.nth(0).locator("ul.tree li li").all_inner_texts() == [
        "ParentImage ends_with \\w3wp.exe", "ParentImage ends_with \\httpd.exe",
        "ParentImage ends_with \\tomcat9.exe"]
    assert stages.nth(2).locator(".stage-kind").inner_text().lower() == (
        "exclusion: must not match")
    assert stages.nth(2).locator("ul.tree > li").inner_text() == (
        "CommandLine contains healthcheck.cmd")
    screenshot(tab, ARTIFACTS / "rule-demo.png")
    assert tab.problems == []


def test_site_browser_works_from_a_file_url(demo, tab):
    _, site = demo
    tab.open((site / "index.html").as_uri())

    tab.tab.fill("#search", "T1505")

    assert tab.tab.locator("#results a").first.inner_text() == "T1505 Server Software Component"
    assert tab.problems == []


def test_site_browser_no_page_logs_an_error(demo, base, tab):
    _, site = demo
    pages = sorted(path.relative_to(site).as_posix() for path in site.rglob("*.html"))

    for page in pages:
        tab.open(f"{base}/{page}")

    assert len(pages) > 40
    assert tab.problems == []
