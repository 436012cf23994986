"""Incremental builds: the parse cache, the build state, and graphs equal to clean builds.

Each scenario builds a small six-vendor catalogue (a few files of each snapshot), changes it,
rebuilds incrementally, builds the same files from scratch into another database, and compares
the two graphs table by table (kb.diff.comparable) and the two load reports.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sync_repos import commit, corpus_files, git, make_repo, url, write_config

from kb import build as build_module
from kb.build import SourceInput, build, open_source
from kb.config import load_config
from kb.demo import demo_attack_bundle
from kb.diff import comparable, stored_tables
from kb.graph.ladybug_backend import LadybugBackend
from kb.queries import canned_queries, run_query
from kb.sync import read_lock, resolve, sync

SUBSETS = {
    "sigma": (("rules/windows/process_creation/", "rules/linux/", "deprecated/"), 8),
    "elastic": (("rules/windows/", "rules/linux/", "rules_building_block/"), 5),
    "splunk": (("detections/endpoint/",), 10),
    "sentinel": (("Detections/", "Hunting Queries/"), 6),
    "chronicle": (("rules/community/", "rules/_deprecated/"), 5),
    "panther": (("rules/aws_cloudtrail_rules/", "correlation_rules/", "queries/"), 5),
}
SPLUNK_CONTEXT = ("macros/", "data_sources/", "lookups/")
SIGMA_RULE = "rules/windows/process_creation/"


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@pytest.fixture(scope="module")
def catalogue_files() -> dict[str, dict[str, bytes]]:
    files = {vendor: corpus_files(vendor, prefixes, count)
             for vendor, (prefixes, count) in SUBSETS.items()}
    files["splunk"].update(corpus_files("splunk", SPLUNK_CONTEXT, 10_000))
    return files


@pytest.fixture
def catalogue(tmp_path, catalogue_files) -> list[Path]:
    roots = []
    for vendor, files in catalogue_files.items():
        write_tree(tmp_path / "src" / vendor, files)
        roots.append(tmp_path / "src" / vendor)
    return roots


def build_into(db: Path, sources, fresh: bool = False):
    backend = LadybugBackend(db)
    try:
        return build(sources, demo_attack_bundle(), backend, fresh=fresh)
    finally:
        backend.close()


def graph_of(db: Path) -> dict[str, list[str]]:
    backend = LadybugBackend(db, read_only=True)
    try:
        return comparable(stored_tables(backend))
    finally:
        backend.close()


def assert_same_as_clean(tmp_path: Path, db: Path, sources, report) -> None:
    clean = build_into(tmp_path / "clean.lbug", sources, fresh=True)
    incremental, scratch = graph_of(db), graph_of(tmp_path / "clean.lbug")
    assert [name for name in incremental if incremental[name] != scratch[name]] == []
    assert same_report(report, clean)


def same_report(first, second) -> bool:
    """Two load reports equal but for the time taken and how the build went."""
    ignored = {"seconds": 0, "build": {}}
    return {**first.as_dict(), **ignored} == {**second.as_dict(), **ignored}


@pytest.fixture
def parsed(monkeypatch) -> list[tuple[int, str]]:
    """Every (source, path) the parser is asked for during the test."""
    calls: list[tuple[int, str]] = []
    original = build_module.parse_files

    def counting(opened, tasks, progress):
        calls.extend(tasks)
        return original(opened, tasks, progress)

    monkeypatch.setattr(build_module, "parse_files", counting)
    return calls


def sigma_file(root: Path, index: int = 0) -> Path:
    return sorted((root / SIGMA_RULE).glob("*.yml"))[index]


def test_incremental_rebuild_with_nothing_changed_parses_nothing(tmp_path, catalogue, parsed):
    db = tmp_path / "kb.lbug"
    first = build_into(db, catalogue)
    parsed.clear()

    again = build_into(db, catalogue)

    assert parsed == []
    assert same_report(again, first)
    assert again.build == {"mode": "delta", "rule_files": first.build["rule_files"], "parsed": 0,
                           "from_cache": 0}
    assert sum(v.rules for v in first.vendors.values()) > 60


def test_incremental_changes_equal_a_clean_build(tmp_path, catalogue, parsed):
    sigma, elastic = catalogue[0], catalogue[1]
    db = tmp_path / "kb.lbug"
    build_into(db, catalogue)
    parsed.clear()
    changed = sigma_file(sigma)
    changed.write_text(changed.read_text().replace(
        "    condition: ", "    kb_extra:\n        CommandLine|contains: 'kb-value'\n"
        "    condition: kb_extra or ", 1))
    sigma_file(sigma, 1).unlink()
    deprecated = sigma_file(sigma, 2)
    deprecated.write_text(deprecated.read_text().replace("\nstatus: ", "\nstatus: deprecated\n"
                                                         "old_status: ", 1))
    shutil.copy(sorted((elastic / "rules/windows").glob("*.toml"))[0],
                elastic / "rules/windows/zz_copy.toml")

    report = build_into(db, catalogue)

    assert sorted(path for _, path in parsed) == sorted([
        f"{SIGMA_RULE}{changed.name}", f"{SIGMA_RULE}{deprecated.name}",
        "rules/windows/zz_copy.toml"])
    assert len(report.duplicates) == 1
    assert_same_as_clean(tmp_path, db, catalogue, report)


def test_incremental_duplicate_uid_moves_to_the_earlier_file(tmp_path, catalogue):
    sigma = catalogue[0]
    db = tmp_path / "kb.lbug"
    build_into(db, catalogue)
    last = sigma_file(sigma, -1)
    earlier = sigma / SIGMA_RULE / "aaa_first.yml"
    earlier.write_text(last.read_text().replace("title: ", "title: Earlier copy of ", 1))

    report = build_into(db, catalogue)
    assert report.duplicates[0]["kept"] == f"{SIGMA_RULE}aaa_first.yml"
    assert_same_as_clean(tmp_path, db, catalogue, report)

    earlier.unlink()
    report = build_into(db, catalogue)
    assert report.duplicates == []
    assert_same_as_clean(tmp_path, db, catalogue, report)


def test_incremental_shared_context_change_reparses_that_source(tmp_path, catalogue, parsed):
    splunk = catalogue[2]
    db = tmp_path / "kb.lbug"
    build_into(db, catalogue)
    parsed.clear()
    macro = sorted((splunk / "macros").glob("*.yml"))[0]
    macro.write_text(macro.read_text().replace("definition:", "definition: (kb) OR", 1))

    report = build_into(db, catalogue)

    assert {index for index, _ in parsed} == {2}
    assert len(parsed) == SUBSETS["splunk"][1]
    assert_same_as_clean(tmp_path, db, catalogue, report)


def test_incremental_source_dropped_and_added_back(tmp_path, catalogue, parsed):
    db = tmp_path / "kb.lbug"
    build_into(db, catalogue)

    report = build_into(db, catalogue[:-1])
    assert "panther" not in report.vendors
    assert_same_as_clean(tmp_path, db, catalogue[:-1], report)

    parsed.clear()
    report = build_into(db, catalogue)
    assert parsed == []
    assert_same_as_clean(tmp_path, db, catalogue, report)


def test_incremental_fresh_parses_everything_again(tmp_path, catalogue, parsed):
    db = tmp_path / "kb.lbug"
    build_into(db, catalogue)
    parsed.clear()

    build_into(db, catalogue, fresh=True)

    every_file = [(index, path) for index, root in enumerate(catalogue)
                  for path in open_source(root).paths]
    assert sorted(parsed) == sorted(every_file)


def test_incremental_database_rebuilt_elsewhere_means_a_full_load(tmp_path, catalogue, parsed):
    db = tmp_path / "kb.lbug"
    build_into(db, catalogue)
    state = db.with_name("kb.lbug.kbstate")
    kept = state.read_bytes()
    build_into(db, catalogue[:2])
    state.write_bytes(kept)
    parsed.clear()

    report = build_into(db, catalogue)

    assert parsed == []  # every file still comes from the parse cache
    assert_same_as_clean(tmp_path, db, catalogue, report)


def test_incremental_many_changes_load_the_graph_whole(tmp_path, catalogue, monkeypatch):
    db = tmp_path / "kb.lbug"
    build_into(db, catalogue)
    for path in [*catalogue[0].rglob("*.yml"), *catalogue[1].rglob("*.toml")]:
        path.write_text(path.read_text() + "\n# touched\n")
    modes = []
    original = build_module.incremental.plan

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        modes.append(result.mode)
        return result

    monkeypatch.setattr(build_module.incremental, "plan", spy)

    report = build_into(db, catalogue)

    assert modes == ["full"]
    assert_same_as_clean(tmp_path, db, catalogue, report)


def test_incremental_git_flow_sync_change_upstream_resync_rebuild(tmp_path, catalogue_files):
    """The issue's check: sync, build, change a rule upstream, sync again, rebuild, compare
    with a clean build; then the first lock reproduces the first state."""
    upstream = tmp_path / "upstream"
    make_repo(upstream, catalogue_files["sigma"])
    config = load_config(write_config(tmp_path, {"sigma": {"git": url(upstream)}}))
    db = tmp_path / "kb.lbug"
    sync(config)
    first_lock = config.lock_path.read_text()
    build_into(db, resolve(config)[0])
    first_graph = graph_of(db)
    path = sorted(p for p in catalogue_files["sigma"] if p.startswith(SIGMA_RULE))[0]
    text = (upstream / path).read_text()
    second = commit(upstream, {path: text.replace("level: ", "level: critical\nold_level: ", 1)
                               .encode()}, "raise a level")

    sync(config)
    sources, _ = resolve(config)
    report = build_into(db, sources)

    assert sources[0].commit == second
    assert_same_as_clean(tmp_path, db, sources, report)
    assert {json.loads(row)["commit"] for row in graph_of(db)["Rule"]} == {second}

    config.lock_path.write_text(first_lock)
    sync(config, locked=True)
    report = build_into(db, resolve(config)[0])
    assert graph_of(db) | {"KbInfo": []} == first_graph | {"KbInfo": []}
    assert read_lock(config.lock_path).sources["sigma"].commit == git(upstream, "rev-parse",
                                                                      "HEAD~1")


def test_incremental_include_and_exclude_filter_the_rule_files(tmp_path, catalogue):
    sigma = catalogue[0]
    only_linux = SourceInput(sigma, name="sigma", include=("rules/linux",),
                             exclude=("rules/linux/**/*network*",))

    report = build_into(tmp_path / "kb.lbug", [only_linux])

    expected = [p for p in (sigma / "rules/linux").rglob("*.yml") if "network" not in p.name]
    assert report.vendors["sigma"].rules == len(expected) > 0


def canned_answers(db: Path) -> dict[str, list[str]]:
    """Every canned query's rows with its default parameters, as sorted JSON. Lists a query
    collects are sorted too: collect() follows storage order, which an in-place update changes
    while the graph stays the same."""
    backend = LadybugBackend(db, read_only=True)
    try:
        answers = {}
        for name in canned_queries():
            rows = run_query(backend, name)
            if name == "kb_info":
                rows = [row for row in rows if row["key"] not in ("built_at", "build_id")]
            answers[name] = sorted(json.dumps({key: sorted(value, key=repr)
                                               if isinstance(value, list) else value
                                               for key, value in row.items()},
                                              sort_keys=True, default=str) for row in rows)
        return answers
    finally:
        backend.close()


def test_incremental_canned_queries_answer_as_a_clean_build(tmp_path, catalogue):
    sigma = catalogue[0]
    db = tmp_path / "kb.lbug"
    build_into(db, catalogue)
    changed = sigma_file(sigma)
    changed.write_text(changed.read_text().replace("\nlevel: ", "\nlevel: critical\nold: ", 1)
                       .replace("    condition: ", "    kb_extra:\n        Image|endswith: "
                                "'\\\\kb.exe'\n    condition: kb_extra or ", 1))
    sigma_file(sigma, 3).unlink()
    build_into(db, catalogue)
    build_into(tmp_path / "clean.lbug", catalogue, fresh=True)

    incremental, clean = canned_answers(db), canned_answers(tmp_path / "clean.lbug")

    assert [name for name in clean if incremental[name] != clean[name]] == []
    assert sum(map(len, clean.values())) > 100


def _sigma_rules(db: Path) -> dict[str, dict]:
    backend = LadybugBackend(db, read_only=True)
    try:
        return {row["path"]: row for row in backend.query(
            "MATCH (r:Rule) WHERE r.vendor = 'sigma' "
            "RETURN r.path AS path, r.text AS text, r.condition AS condition")}
    finally:
        backend.close()


def test_incremental_rules_keep_their_text_and_condition_from_the_cache(tmp_path, catalogue,
                                                                        parsed):
    sigma = catalogue[0]
    build_into(tmp_path / "kb.lbug", catalogue)
    changed = sigma_file(sigma)
    changed.write_text(changed.read_text().replace("\nlevel: ", "\nlevel: critical\nold: ", 1))
    parsed.clear()

    build_into(tmp_path / "kb.lbug", catalogue)  # a delta: the changed file parsed
    build_into(tmp_path / "other.lbug", catalogue)  # a full load, every file from the cache

    assert [path for _, path in parsed] == [f"{SIGMA_RULE}{changed.name}"]
    for db in (tmp_path / "kb.lbug", tmp_path / "other.lbug"):
        rules = _sigma_rules(db)
        assert len(rules) >= 8
        assert {path: row["text"] for path, row in rules.items()} == {
            path: (sigma / path).read_bytes().decode("utf-8-sig") for path in rules}
        assert "level: critical" in rules[f"{SIGMA_RULE}{changed.name}"]["text"]
        assert all(next(iter(json.loads(row["condition"]))) in ("and", "or", "not", "pred")
                   for row in rules.values())


def test_a_whole_load_cut_short_leaves_the_previous_graph(tmp_path, catalogue, monkeypatch):
    db = tmp_path / "kb.lbug"
    build_into(db, catalogue)
    before = graph_of(db)

    def cut_short(self, tables):
        raise KeyboardInterrupt

    monkeypatch.setattr(LadybugBackend, "insert", cut_short)
    with pytest.raises(KeyboardInterrupt):
        build_into(db, catalogue, fresh=True)
    monkeypatch.undo()

    assert graph_of(db) == before
    assert sorted(path.name for path in tmp_path.glob("kb.lbug*")) == ["kb.lbug",
                                                                      "kb.lbug.kbstate"]
