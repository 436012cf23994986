"""The sources file, `kb sync` and the lock file, on local git repositories made here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sync_repos import commit, corpus_files, git, make_repo, url, write_config
from typer.testing import CliRunner

from kb import sync as sync_module
from kb.cli import app
from kb.commands.common import EXIT_OK, EXIT_USER_ERROR
from kb.config import glob_match, load_config, packaged_default
from kb.demo import demo_attack_bundle
from kb.errors import UserError
from kb.sync import checkout_dir, read_lock, resolve, sync

runner = CliRunner()
SIGMA_RULES = ("rules/windows/process_creation/", "rules/linux/")


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A Sigma repository: a few process-creation and Linux rules, and a README."""
    files = corpus_files("sigma", SIGMA_RULES, 4)
    files["README.md"] = b"rules for tests\n"
    make_repo(tmp_path / "upstream", files)
    return tmp_path / "upstream"


def config_for(folder: Path, upstream: Path, **settings):
    return load_config(write_config(folder, {"sigma": {"vendor": "sigma", "git": url(upstream),
                                                       **settings}}))


# --- the sources file ---------------------------------------------------------------------------


def test_config_reads_sources_relative_paths_and_the_lock_beside_it(tmp_path):
    path = write_config(tmp_path, {
        "mine": {"path": "rules", "include": "detections/**"},
        "snap": {"archive": "snap.tar.gz", "vendor": "elastic", "exclude": ["x/*"]},
        "up": {"git": "https://example.invalid/r.git", "ref": "v1"}},
        attack={"domain": "ics", "url": "https://example.invalid/a.json", "sha256": "AB"})

    config = load_config(path)

    assert [(s.name, s.kind, s.location, s.vendor) for s in config.sources] == [
        ("mine", "path", str(tmp_path / "rules"), "auto"),
        ("snap", "archive", str(tmp_path / "snap.tar.gz"), "elastic"),
        ("up", "git", "https://example.invalid/r.git", "auto")]
    assert config.sources[0].include == ("detections/**",)
    assert config.sources[2].ref == "v1"
    assert (config.attack.domain, config.attack.url, config.attack.sha256) == (
        "ics-attack", "https://example.invalid/a.json", "ab")
    assert config.cache == tmp_path / "cache"
    assert config.lock_path == tmp_path / "kb.lock"


@pytest.mark.parametrize(("sources", "message"), [
    ({"s": {"git": "u", "path": "p"}}, "give exactly one of git, path or archive"),
    ({"s": {"path": "p", "branch": "x"}}, "unknown setting 'branch'"),
    ({"s": {"path": "p", "vendor": "qradar"}}, "unknown vendor 'qradar'"),
    ({"s": {"path": "p", "ref": "main"}}, "`ref` is for git sources only"),
    ({"bad name": {"path": "p"}}, "a name is letters"),
    ({"s": {"path": "p", "include": [1]}}, "must be a glob or a list of globs"),
])
def test_config_mistakes_are_one_line_naming_the_file(tmp_path, sources, message):
    path = write_config(tmp_path, sources)

    with pytest.raises(UserError, match=message) as raised:
        load_config(path)

    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_config_default_lists_the_six_repositories_and_enterprise_attack():
    config = load_config(packaged_default())

    assert [s.vendor for s in config.sources] == [
        "sigma", "elastic", "splunk", "sentinel", "chronicle", "panther"]
    assert all(s.kind == "git" and s.location.startswith("https://github.com/")
               for s in config.sources)
    assert (config.attack.domain, config.attack.version) == ("enterprise-attack", "18.1")
    assert config.packaged
    assert config.lock_path == Path.cwd() / "kb.lock"


@pytest.mark.parametrize(("path", "glob", "expected"), [
    ("rules/a/b.yml", "rules", True),
    ("rules/a/b.yml", "rules/**", True),
    ("rules/a/b.yml", "rules/*.yml", False),
    ("rules/b.yml", "rules/*.yml", True),
    ("rules/a/b.yml", "rules/**/*.yml", True),
    ("rules-threat-hunting/x.yml", "rules*", True),
    ("Solutions/Box/Analytic Rules/r.yaml", "Solutions/*/Analytic Rules", True),
    ("Solutions/Box/Data Connectors/c.json", "Solutions/*/Analytic Rules", False),
    ("lookups/a.csv", "lookups/*.yml", False),
])
def test_config_globs_stay_in_a_folder_except_double_star(path, glob, expected):
    assert glob_match(path, glob) is expected


# --- sync -----------------------------------------------------------------------------------


def test_sync_clones_then_fast_forwards_and_records_each_commit(tmp_path, upstream):
    config = config_for(tmp_path, upstream, ref="main")
    first = git(upstream, "rev-parse", "HEAD")

    result = sync(config)
    second = commit(upstream, {"rules/linux/new_rule.yml": b"title: new\n"}, "more",
                    date="2026-02-03T04:05:06+00:00")
    again = sync(config)

    assert [o.ok for o in result.outcomes] == [True, True]
    assert result.outcomes[0].message == f"{first[:12]} (2026-01-01T00:00:00+00:00), new"
    assert again.outcomes[0].message == f"{second[:12]} (2026-02-03T04:05:06+00:00), " \
                                        f"was {first[:12]}"
    lock = read_lock(config.lock_path)
    assert (lock.sources["sigma"].commit, lock.sources["sigma"].date) == (
        second, "2026-02-03T04:05:06+00:00")
    assert (checkout_dir(config, config.sources[0]) / "rules/linux/new_rule.yml").is_file()
    assert git(checkout_dir(config, config.sources[0]), "rev-parse",
               "--is-shallow-repository") == "true"


def test_sync_again_with_nothing_new_says_up_to_date(tmp_path, upstream):
    config = config_for(tmp_path, upstream)

    sync(config)
    result = sync(config)

    assert result.outcomes[0].message.endswith("up to date")
    assert not result.outcomes[0].changed


def test_sync_locked_reproduces_the_recorded_commit(tmp_path, upstream):
    config = config_for(tmp_path, upstream)
    sync(config)
    first_lock = config.lock_path.read_text()
    first = read_lock(config.lock_path).sources["sigma"].commit
    commit(upstream, {"rules/linux/new_rule.yml": b"title: new\n"}, "more")
    sync(config)
    config.lock_path.write_text(first_lock)

    result = sync(config, locked=True)

    checkout = checkout_dir(config, config.sources[0])
    assert result.outcomes[0].ok
    assert git(checkout, "rev-parse", "HEAD") == first
    assert not (checkout / "rules/linux/new_rule.yml").exists()
    assert config.lock_path.read_text() == first_lock


def test_sync_include_fetches_a_sparse_checkout(tmp_path, upstream):
    config = config_for(tmp_path, upstream, include=["rules/linux"])

    sync(config)

    checkout = checkout_dir(config, config.sources[0])
    files = sorted(p.relative_to(checkout).as_posix() for p in checkout.rglob("*")
                   if p.is_file() and ".git" not in p.parts)
    assert files
    assert all(path.startswith("rules/linux/") for path in files)


def test_sync_unreachable_source_fails_alone_in_one_line_and_keeps_its_cache(tmp_path, upstream):
    config = load_config(write_config(tmp_path, {
        "sigma": {"git": url(upstream)},
        "gone": {"git": url(tmp_path / "nowhere")}}))
    sync(config, only=("sigma",))
    checkout = checkout_dir(config, config.sources[0])
    before = git(checkout, "rev-parse", "HEAD")
    shutil.move(upstream, tmp_path / "moved")

    result = sync(config)

    by_name = {o.name: o for o in result.outcomes}
    assert not by_name["sigma"].ok
    assert not by_name["gone"].ok
    assert by_name["attack"].ok
    assert by_name["sigma"].message.startswith(f"cannot fetch {url(upstream)} at HEAD: ")
    assert "\n" not in by_name["gone"].message
    assert git(checkout, "rev-parse", "HEAD") == before
    assert (checkout / "rules").is_dir()
    assert not checkout_dir(config, config.sources[1]).exists()
    assert read_lock(config.lock_path).sources["sigma"].commit == before


def test_sync_bad_ref_is_one_line(tmp_path, upstream):
    config = config_for(tmp_path, upstream, ref="no-such-branch")

    outcome = sync(config).outcomes[0]

    assert not outcome.ok
    assert "no-such-branch" in outcome.message
    assert "\n" not in outcome.message


def test_sync_attack_bundle_by_file_url_is_checked_against_its_sha256(tmp_path):
    bundle = demo_attack_bundle()
    digest = sync_module.sha256_of(bundle)
    good = load_config(write_config(tmp_path, {}, attack={"url": url(bundle),
                                                          "sha256": digest}))
    (tmp_path / "bad").mkdir()
    bad = load_config(write_config(tmp_path / "bad", {}, attack={"url": url(bundle),
                                                                 "sha256": "0" * 64}))

    fetched, refused = sync(good).outcomes[0], sync(bad).outcomes[0]

    assert fetched.ok
    assert fetched.message.endswith(f"18.1 (sha256 {digest[:12]})")
    lock = read_lock(good.lock_path)
    assert (lock.attack.version, lock.attack.sha256) == ("18.1", digest)
    assert (good.cache / lock.attack.file).read_bytes() == bundle.read_bytes()
    assert not refused.ok
    assert f"sha256 is {digest}, expected {'0' * 64}" in refused.message
    assert not list((tmp_path / "bad" / "cache" / "attack").iterdir())


def test_sync_attack_release_goes_through_mitreattack_download(tmp_path, monkeypatch):
    from mitreattack import download_stix, release_info

    calls = []

    def fake_download(stix_version, domain, download_dir, release, known_hash):
        calls.append((stix_version, domain, release, known_hash))
        target = Path(download_dir) / f"v{release}" / f"{domain}-attack.json"
        target.parent.mkdir(parents=True)
        shutil.copy(demo_attack_bundle(), target)

    monkeypatch.setattr(download_stix, "download_stix", fake_download)
    config = load_config(write_config(tmp_path, {}, attack={"version": "18.1"}))

    outcome = sync(config).outcomes[0]

    known = release_info.STIX21["enterprise"]["18.1"]
    assert calls == [("2.1", "enterprise", "18.1", known)]
    assert outcome.ok
    assert read_lock(config.lock_path).attack.file == f"attack/{known}.json"


def test_sync_attack_unknown_release_is_refused(tmp_path):
    config = load_config(write_config(tmp_path, {}, attack={"version": "1.9"}))

    outcome = sync(config).outcomes[0]

    assert not outcome.ok
    assert outcome.message.startswith("ATT&CK enterprise-attack 1.9 is not a release")


def test_sync_local_sources_record_their_digest_and_git_commit(tmp_path, upstream):
    archive = tmp_path / "rules.tar"
    shutil.make_archive(str(tmp_path / "rules"), "tar", upstream, "rules")
    config = load_config(write_config(tmp_path, {"folder": {"path": str(upstream)},
                                                 "archive": {"archive": str(archive)}}))

    sync(config)

    lock = read_lock(config.lock_path)
    assert lock.sources["folder"].commit == git(upstream, "rev-parse", "HEAD")
    assert lock.sources["archive"].sha256 == sync_module.sha256_of(archive)


def test_sync_resolve_fails_for_an_unfetched_source(tmp_path, upstream):
    config = config_for(tmp_path, upstream)

    with pytest.raises(UserError, match="not fetched yet"):
        resolve(config)


# --- the commands ---------------------------------------------------------------------------


def test_sync_cli_then_build_with_no_arguments_records_provenance(tmp_path, upstream,
                                                                  monkeypatch):
    write_config(tmp_path, {"sigma": {"git": url(upstream), "include": ["rules"]}})
    monkeypatch.chdir(tmp_path)
    head = git(upstream, "rev-parse", "HEAD")

    synced = runner.invoke(app, ["sync"])
    built = runner.invoke(app, ["build", "--db", str(tmp_path / "kb.lbug")])
    stats = runner.invoke(app, ["stats", "--format", "json", "--db", str(tmp_path / "kb.lbug")])
    rule = runner.invoke(app, ["query", "rule", "--format", "json", "--db",
                               str(tmp_path / "kb.lbug"), "-p",
                               f"uid={_first_uid(tmp_path / 'kb.lbug')}"])

    assert synced.exit_code == EXIT_OK, synced.output
    assert f"sigma: {head[:12]} (2026-01-01T00:00:00+00:00), new" in synced.output
    assert built.exit_code == EXIT_OK, built.output
    info = {row["key"]: row["value"] for row in json.loads(stats.output)["info"]}
    assert info["source:sigma"] == f"sigma at {head[:12]} (2026-01-01)"
    assert info["origin:sigma"] == url(upstream)
    [row] = json.loads(rule.output)
    assert (row["source"], row["commit"]) == ("sigma", head)
    assert row["path"].startswith("rules/")


def _first_uid(db: Path) -> str:
    from kb.graph.ladybug_backend import LadybugBackend

    backend = LadybugBackend(db, read_only=True)
    try:
        return backend.query("MATCH (r:Rule) RETURN r.uid AS uid ORDER BY uid LIMIT 1")[0]["uid"]
    finally:
        backend.close()


def test_sync_cli_failure_exits_1_with_one_line_per_source(tmp_path, monkeypatch):
    write_config(tmp_path, {"a": {"git": url(tmp_path / "none-a")},
                            "b": {"git": url(tmp_path / "none-b")}})
    monkeypatch.chdir(tmp_path)

    result = runner.invoke(app, ["sync"])

    failures = [line for line in result.output.splitlines() if line.startswith("kb: ")]
    assert result.exit_code == 1
    assert [line.split(":")[1].strip() for line in failures] == ["a", "b"]


def test_sync_cli_locked_without_a_lock_is_a_user_error(tmp_path, monkeypatch):
    write_config(tmp_path, {})
    monkeypatch.chdir(tmp_path)

    result = runner.invoke(app, ["sync", "--locked"])

    assert result.exit_code == EXIT_USER_ERROR
    assert "no lock file to reproduce" in result.output
