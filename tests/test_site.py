"""`kb site` on the demo corpus (one rule or more in each vendor's format): every page kind
written, the technique page holding the guide `kb guide` gives, a rule page with its text
(escaped, a long one cut) and its condition stages, no broken link anywhere, and the mistakes a
user can make. The browser tests are in test_site_browser.py."""

import json
import re
from html import unescape
from importlib import resources

import pytest
from typer.testing import CliRunner

from kb.build import build
from kb.cli import app
from kb.commands.common import EXIT_OK, EXIT_USER_ERROR
from kb.demo import demo_attack_bundle, demo_sources
from kb.errors import UserError
from kb.graph.ladybug_backend import LadybugBackend
from kb.queries import guide
from kb.site import build_site, paths
from kb.site import pages as site_pages
from kb.site.check import broken_links
from kb.site.condition import TEXT_CHARS

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("demo") / "demo.lbug"
    backend = LadybugBackend(db)
    build(demo_sources(), demo_attack_bundle(), backend)
    backend.close()
    return db


@pytest.fixture(scope="module")
def demo_backend(demo_db):
    backend = LadybugBackend(demo_db, read_only=True)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def demo_site(demo_backend, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    report = build_site(demo_backend, out)
    return out, report


def _section(html: str, section: str) -> str:
    match = re.search(rf'<section id="{section}">(.*?)</section>', html, re.S)
    assert match, f"no section {section}"
    return match.group(1)


def _rows(html: str) -> int:
    return html.count("<tr>") - html.count("<thead><tr>")


def test_site_writes_every_kind_of_page(demo_site, demo_backend):
    out, report = demo_site
    count = {label: demo_backend.query(f"MATCH (n:{label}) RETURN count(n) AS n")[0]["n"]
             for label in ("Rule", "Field", "EventType")}

    assert report.pages["index"] == 1
    assert report.pages["technique"] == 7  # the demo ATT&CK subset, revoked T1086 left out
    assert report.pages["rule"] == count["Rule"] == 9
    assert report.pages["field"] == count["Field"]
    assert report.pages["event_type"] == count["EventType"]
    assert report.pages["indicator"] >= 5
    assert report.bytes == sum(p.stat().st_size for p in out.rglob("*.html"))
    assert (out / "assets" / "site.js").is_file()


def test_site_has_no_broken_link(demo_site):
    out, _ = demo_site

    assert broken_links(out) == []


def test_site_search_entries_all_have_pages(demo_site):
    out, _ = demo_site
    text = (out / "assets" / "matrix-data.js").read_text()
    data = json.loads(text.removeprefix("window.KB_MATRIX = ").rstrip().removesuffix(";"))

    assert [tid for tid, _ in data["search"]] == [
        "T1003", "T1003.001", "T1059", "T1059.001", "T1505", "T1505.003", "T1505.004"]
    assert all((out / paths.technique_path(tid)).is_file() for tid, _ in data["search"])
    assert len(data["scope"]["T1505"]) == 8


def test_site_index_has_the_matrix_in_tactic_order(demo_site):
    out, _ = demo_site
    html = (out / "index.html").read_text()

    tactics = re.findall(r'<section class="tactic" data-tactic="([a-z-]+)">', html)
    assert tactics == ["execution", "persistence", "credential-access"]
    assert 'data-id="T1505" data-name="Server Software Component"' in html
    assert re.search(r'class="cell h\d" data-id="T1505"', html)


def test_site_technique_page_is_the_guide(demo_site, demo_backend):
    out, _ = demo_site
    html = (out / paths.technique_path("T1505")).read_text()
    expected = guide(demo_backend, "T1505")

    assert f'<strong id="rule-count">{expected.technique["rules"]}</strong>' in html
    assert _rows(_section(html, "events")) == len(expected.events)
    assert _rows(_section(html, "fields")) == len(expected.fields)
    assert _rows(_section(html, "indicators")) == len(expected.indicators)
    assert _rows(_section(html, "exclusions")) == len(expected.exclusions)
    rules = _section(html, "rules")
    for vendor, rows in expected.rules_by_vendor.items():
        table = re.search(rf'<table class="rules" data-vendor="{vendor}">(.*?)</table>', rules,
                          re.S)
        assert _rows(table.group(1)) == len(rows)


def test_site_technique_page_links_values_to_their_drilldowns(demo_site):
    out, _ = demo_site
    html = _section((out / paths.technique_path("T1505")).read_text(), "exclusions")

    assert 'href="../indicators/' in html or 'href="../rules/' in html
    assert "<span>" not in html  # every value links somewhere


def test_site_rule_page_shows_metadata_indicators_and_neighbours(demo_site):
    out, _ = demo_site
    uid = "sigma:5b0e3c1a-7d64-4f0e-9a51-3e2b8c7d1f01"  # Shell Spawned By A Web Server Process
    html = (out / paths.rule_path(uid)).read_text()

    assert f"<code>{uid}</code>" in html
    assert "<code>rules/web/web_shell_child_shell.yml</code>" in html
    for section in ("text", "condition", "indicators", "exclusions", "neighbours"):
        assert f'<section id="{section}">' in html
    assert _rows(_section(html, "neighbours")) >= 1


def test_site_drilldowns_paginate_long_rule_lists(demo_backend, tmp_path, monkeypatch):
    monkeypatch.setattr(site_pages, "DRILLDOWN_ROWS", 2)

    build_site(demo_backend, tmp_path / "site", jobs=1)

    fields = tmp_path / "site" / "fields"
    second_pages = sorted(fields.glob("*-2.html"))
    assert second_pages
    for second in second_pages:
        first = fields / second.name.replace("-2.html", ".html")
        assert f'href="../fields/{second.name}"' in first.read_text()
    assert broken_links(tmp_path / "site") == []


def test_site_rebuild_replaces_the_earlier_site(demo_backend, tmp_path):
    out = tmp_path / "site"
    build_site(demo_backend, out, jobs=1)
    stale = out / "rules" / "gone.html"
    stale.write_text("old")

    build_site(demo_backend, out, jobs=1)

    assert not stale.exists()
    assert (out / "index.html").is_file()


def test_site_refuses_a_folder_that_holds_something_else(demo_backend, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(UserError, match="not empty"):
        build_site(demo_backend, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_site_cli_writes_the_site_and_reports_sizes(demo_db, tmp_path):
    result = runner.invoke(app, ["site", str(tmp_path / "out"), "--db", str(demo_db),
                                 "--format", "json"])

    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(result.output)
    assert report["pages"]["technique"] == 7
    assert report["largest_page_bytes"] > 0
    assert report["total_pages"] == len(list((tmp_path / "out").rglob("*.html")))


def test_site_cli_without_a_knowledge_base_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["site", str(tmp_path / "out"), "--db",
                                 str(tmp_path / "missing.lbug")])

    assert result.exit_code == EXIT_USER_ERROR
    assert "no knowledge base" in result.output


def test_site_paths_are_unique_and_safe():
    names = ["CommandLine", "commandline", "a/b", "a?b", "a b", "", "x" * 200]

    slugs = [paths.field_path(name) for name in names]

    assert len(set(slugs)) == len(names)
    assert all(re.fullmatch(r"fields/[A-Za-z0-9._-]+\.html", slug) for slug in slugs)
    assert paths.rule_path("sigma:0a1b-c2") == "rules/sigma/0a1b-c2.html"
    assert paths.rule_path("chronicle:Name@rules/x.yaral").startswith("rules/chronicle/Name-")
    assert paths.root_of("rules/sigma/x.html") == "../../"


def test_site_broken_links_are_found(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#x">b</a> <a href="https://e.org">e</a>'
                                     ' <a href="c.html">c</a>')
    (tmp_path / "b.html").write_text('<h1 id="y">b</h1>')

    assert broken_links(tmp_path) == ["a.html: b.html#x", "a.html: c.html"]


@pytest.mark.neo4j
def test_site_from_neo4j_is_the_site_from_ladybug(demo_site, neo4j_backend, tmp_path):
    out, _ = demo_site
    build(demo_sources(), demo_attack_bundle(), neo4j_backend)

    build_site(neo4j_backend, tmp_path / "site", jobs=1)

    def pages(site):
        return {path.relative_to(site).as_posix(): re.sub(
            r'<span class="build">.*?</span>', "", path.read_text())
            for path in site.rglob("*.html")}
    assert pages(tmp_path / "site") == pages(out)


def _pre_text(html: str) -> str:
    match = re.search(r'<pre class="rule-text"><code>(.*?)</code></pre>', html, re.S)
    assert match, "no rule text"
    return unescape(match.group(1))


def test_site_rule_page_shows_the_rule_text_and_its_condition_stages(demo_site):
    out, _ = demo_site
    uid = "sigma:5b0e3c1a-7d64-4f0e-9a51-3e2b8c7d1f01"
    html = (out / paths.rule_path(uid)).read_text()
    written = resources.files("kb.demo").joinpath(
        "sigma", "rules", "web", "web_shell_child_shell.yml").read_text(encoding="utf-8")

    stages = re.findall(r'<li class="stage (\w+)">', _section(html, "condition"))
    exclusion = _section(html, "condition").split('<li class="stage exclusion">')[1]

    assert _pre_text(html) == written
    assert stages == ["match", "match", "exclusion"]
    assert re.sub(r"<[^>]+>", "", exclusion).split() == [
        "exclusion:", "must", "not", "match", "CommandLine", "contains", "healthcheck.cmd"]


HOSTILE_UID = "sigma:0badc0de-0000-4000-8000-000000000001"
HOSTILE_RULE = """title: Hostile </code></pre><script>alert(1)</script>
id: 0badc0de-0000-4000-8000-000000000001
status: test
description: 'a <b>bold</b> & "quoted" rule'
tags:
    - attack.t1505.003
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\cmd.exe'
    filter:
        CommandLine|contains: '<script>'
    condition: selection and not filter
level: high
"""


def test_site_rule_page_escapes_its_text_and_caps_a_long_one(tmp_path):
    rules = tmp_path / "src" / "rules"
    rules.mkdir(parents=True)
    notes = "".join(f"# note {i}: {'x' * 80}\n" for i in range(300))
    written = HOSTILE_RULE + notes
    (rules / "hostile.yml").write_text(written)
    backend = LadybugBackend(tmp_path / "kb.lbug")
    build([tmp_path / "src"], demo_attack_bundle(), backend)

    build_site(backend, tmp_path / "site", jobs=1)
    backend.close()

    html = (tmp_path / "site" / paths.rule_path(HOSTILE_UID)).read_text()
    shown = _pre_text(html)
    assert "<script>" not in html
    assert shown == written[:len(shown)]
    assert shown.endswith("\n")  # cut at a line end
    assert TEXT_CHARS // 2 < len(shown) <= TEXT_CHARS
    assert f"The first {len(shown):,} characters of {len(written):,}" in html
    stages = _section(html, "condition")
    assert "<code class=\"value\">&lt;script&gt;</code>" in stages
    assert broken_links(tmp_path / "site") == []

