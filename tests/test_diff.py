"""`kb diff`: rules added, removed and changed per vendor, and coverage moves, between two
builds or two lock files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sync_repos import commit, make_repo, url, write_config
from typer.testing import CliRunner

from kb.build import build
from kb.cli import app
from kb.commands.common import EXIT_OK, EXIT_USER_ERROR
from kb.config import load_config
from kb.demo import demo_attack_bundle, demo_sources
from kb.diff import (
    CoverageChange,
    RuleChange,
    TablesBackend,
    compare,
    diff_snapshots,
    snapshot_of_backend,
    snapshot_of_tables,
)
from kb.errors import UserError
from kb.graph.ladybug_backend import LadybugBackend
from kb.sync import resolve, sync

runner = CliRunner()
WEB = "rules/web/"
CHILD_SHELL = "5b0e3c1a-7d64-4f0e-9a51-3e2b8c7d1f01"
IIS = "5b0e3c1a-7d64-4f0e-9a51-3e2b8c7d1f03"
COPY = "00000000-0000-4000-8000-000000000001"


def demo_files() -> dict[str, bytes]:
    root = demo_sources()[0]
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.yml")}


def changed_files(files: dict[str, bytes]) -> dict[str, bytes | None]:
    """The demo rules with one rule's predicates and tags changed, one removed, one added."""
    child = files[f"{WEB}web_shell_child_shell.yml"].decode()
    encoded = files["rules/windows/powershell_encoded.yml"].decode()
    return {
        f"{WEB}web_shell_child_shell.yml": child.replace("'\\cmd.exe'", "'\\pwsh.exe'")
        .replace("attack.t1505.003", "attack.t1059.001").encode(),
        f"{WEB}iis_module_install.yml": None,
        "rules/windows/powershell_encoded_copy.yml": encoded.replace(
            "id: 5b0e3c1a-7d64-4f0e-9a51-3e2b8c7d1f04", f"id: {COPY}").replace(
            "title: ", "title: Copy of ", 1).encode(),
    }


def build_folder(folder: Path, db: Path) -> None:
    backend = LadybugBackend(db)
    try:
        build([folder], demo_attack_bundle(), backend)
    finally:
        backend.close()


def write_files(root: Path, files: dict[str, bytes | None]) -> None:
    for path, data in files.items():
        if data is None:
            (root / path).unlink()
        else:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory) -> tuple[Path, Path]:
    scratch = tmp_path_factory.mktemp("diff")
    shutil.copytree(demo_sources()[0], scratch / "sigma")
    build_folder(scratch / "sigma", scratch / "old.lbug")
    write_files(scratch / "sigma", changed_files(demo_files()))
    build_folder(scratch / "sigma", scratch / "new.lbug")
    return scratch / "old.lbug", scratch / "new.lbug"


def test_diff_builds_lists_rules_added_removed_and_changed(two_builds):
    result = compare(*map(str, two_builds))

    assert result.by_vendor() == {"sigma": {"added": 1, "removed": 1, "changed": 1}}
    assert result.rules == [
        RuleChange("added", f"sigma:{COPY}", "sigma",
                   "Copy of Demo - PowerShell With An Encoded Command"),
        RuleChange("changed", f"sigma:{CHILD_SHELL}", "sigma",
                   "Demo - Shell Spawned By A Web Server Process",
                   ("metadata", "predicates", "techniques")),
        RuleChange("removed", f"sigma:{IIS}", "sigma", "Demo - IIS Module Installed With Appcmd"),
    ]


def test_diff_builds_reports_coverage_moves_per_technique_and_vendor(two_builds):
    result = compare(*map(str, two_builds))

    assert result.coverage == [
        CoverageChange("T1059.001", "PowerShell", "sigma", 1, 3),
        CoverageChange("T1505.003", "Web Shell", "sigma", 2, 1),
        CoverageChange("T1505.004", "IIS Components", "sigma", 1, 0),
    ]


def test_diff_of_a_build_with_itself_is_empty(two_builds):
    result = compare(str(two_builds[0]), str(two_builds[0]))

    assert (result.rules, result.coverage, result.info) == ([], [], [])


def test_diff_snapshot_of_tables_equals_snapshot_of_the_loaded_graph(two_builds, tmp_path):
    memory = TablesBackend()
    build([demo_sources()[0]], demo_attack_bundle(), memory)
    backend = LadybugBackend(tmp_path / "kb.lbug")
    backend.load(memory.tables)

    assert snapshot_of_tables(memory.tables).rules == snapshot_of_backend(backend).rules
    backend.close()


def test_diff_ignores_provenance_and_reach(two_builds):
    backend = LadybugBackend(two_builds[0], read_only=True)
    old = snapshot_of_backend(backend)
    backend.close()
    moved = TablesBackend()
    build([demo_sources()[0]], demo_attack_bundle(), moved)
    for row in moved.tables.nodes["Rule"]:
        row["commit"], row["source"] = "f" * 40, "elsewhere"
    for row in moved.tables.rels["USES"]:
        row["reach"] = 99

    assert diff_snapshots(old, snapshot_of_tables(moved.tables)).rules == []


def test_diff_two_locks_equals_the_diff_of_their_builds(tmp_path):
    upstream = tmp_path / "upstream"
    files = demo_files()
    make_repo(upstream, files)
    config = load_config(write_config(tmp_path, {"demo": {"git": url(upstream),
                                                          "vendor": "sigma"}}))
    sync(config)
    shutil.copy(config.lock_path, tmp_path / "old.lock")
    build_with(resolve(config)[0], tmp_path / "old.lbug")
    commit(upstream, changed_files(files), "change the rules")
    sync(config)
    build_with(resolve(config)[0], tmp_path / "new.lbug")

    by_lock = compare(str(tmp_path / "old.lock"), str(config.lock_path), config.path)
    by_build = compare(str(tmp_path / "old.lbug"), str(tmp_path / "new.lbug"))

    assert by_lock.rules == by_build.rules
    assert by_lock.coverage == by_build.coverage
    assert [key for key, _, _ in by_lock.info] == ["source:demo"]
    assert by_lock.by_vendor() == {"sigma": {"added": 1, "removed": 1, "changed": 1}}


def build_with(sources, db: Path) -> None:
    backend = LadybugBackend(db)
    try:
        build(sources, demo_attack_bundle(), backend)
    finally:
        backend.close()


def test_diff_a_lock_with_a_build_is_a_user_error(two_builds, tmp_path):
    lock = tmp_path / "kb.lock"
    lock.write_text('{"sources": {}}')

    with pytest.raises(UserError, match="not one of each"):
        compare(str(lock), str(two_builds[0]))


def test_diff_cli_text_and_json(two_builds):
    text = runner.invoke(app, ["diff", *map(str, two_builds)])
    data = runner.invoke(app, ["diff", *map(str, two_builds), "--format", "json"])

    assert text.exit_code == EXIT_OK, text.output
    assert "Rules changed (1)" in text.output
    assert "T1505.004" in text.output
    assert data.exit_code == EXIT_OK
    parsed = json.loads(data.output)
    assert parsed["vendors"] == {"sigma": {"added": 1, "removed": 1, "changed": 1}}
    assert parsed["rules"][1] == {"change": "changed", "uid": f"sigma:{CHILD_SHELL}",
                                  "vendor": "sigma",
                                  "title": "Demo - Shell Spawned By A Web Server Process",
                                  "parts": ["metadata", "predicates", "techniques"]}


def test_diff_cli_missing_path_is_a_user_error(two_builds, tmp_path):
    result = runner.invoke(app, ["diff", str(two_builds[0]), str(tmp_path / "nope.lbug")])

    assert result.exit_code == EXIT_USER_ERROR
    assert "no such knowledge base or lock file" in result.output

