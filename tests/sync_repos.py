"""Local git repositories and sources files for the sync, incremental-build and diff tests.

Upstream repositories are made by the tests from a few files of the pinned snapshots and
reached as `file://` URLs: nothing here touches the network.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from conftest import corpus_source

from kb.demo import demo_attack_bundle

_GIT_ENV = {"GIT_AUTHOR_NAME": "kb tests", "GIT_AUTHOR_EMAIL": "tests@kb.invalid",
            "GIT_COMMITTER_NAME": "kb tests", "GIT_COMMITTER_EMAIL": "tests@kb.invalid",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True,
                          env={**os.environ, **_GIT_ENV})
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, bytes | None], message: str,
           date: str = "2026-01-01T00:00:00+00:00") -> str:
    """Write (or, for None, delete) files and commit them; return the commit id."""
    for path, data in files.items():
        target = repo / path
        if data is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    git(repo, "add", "-A")
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, check=True,
                   env={**os.environ, **_GIT_ENV, "GIT_AUTHOR_DATE": date,
                        "GIT_COMMITTER_DATE": date})
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, files: dict[str, bytes]) -> str:
    """A new repository on branch main holding `files` in one commit."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "uploadpack.allowFilter", "true")
    return commit(path, files, "first")


def corpus_files(vendor: str, prefixes: tuple[str, ...], count: int) -> dict[str, bytes]:
    """The first `count` files under each prefix of a vendor's snapshot."""
    source = corpus_source(vendor)
    files: dict[str, bytes] = {}
    for prefix in prefixes:
        for path in [p for p in source.paths() if p.startswith(prefix)][:count]:
            files[path] = source.read_bytes(path)
    return files


def url(path: Path) -> str:
    return path.resolve().as_uri()


def write_config(folder: Path, sources: dict[str, dict], attack: dict | None = None,
                 cache: str = "cache") -> Path:
    """A kb.yaml in `folder`; the ATT&CK bundle defaults to the demo subset, by path."""
    path = folder / "kb.yaml"
    body = {"cache": cache, "attack": attack or {"path": str(demo_attack_bundle())},
            "sources": sources}
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path
