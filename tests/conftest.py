"""Shared fixtures: the pinned corpora under ../shared/corpora, read in place."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from engines import golden_backend  # noqa: F401
from neo4j_fixtures import neo4j_backend, neo4j_server  # noqa: F401

from kb.sources import Source

CORPORA = Path(os.environ.get(
    "KB_CORPORA", Path(__file__).resolve().parents[2] / "shared" / "corpora"))

ARCHIVES = {
    "sigma": "sigmahq-sigma.tar.gz",
    "elastic": "elastic-detection-rules.tar.gz",
    "splunk": "splunk-security_content.tar.gz",
    "sentinel": "azure-sentinel-2022-02.tar.gz",
    "chronicle": "chronicle-detection-rules.tar.gz",
    "panther": "panther-analysis.tar.gz",
}
ATTACK_BUNDLE = CORPORA / "mitre-attack-enterprise-18.1-stix21.json.gz"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("corpus"):
        require_corpora()


def require_corpora() -> None:
    if not CORPORA.is_dir():
        pytest.fail(f"the pinned corpora are missing: {CORPORA} (set KB_CORPORA)")


@cache
def corpus_source(vendor: str) -> Source:
    """The vendor's pinned snapshot, opened once per test session."""
    require_corpora()
    return Source.open(CORPORA / ARCHIVES[vendor])


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test session reads ATT&CK afresh into its own cache, never the user's."""
    os.environ["KB_CACHE_DIR"] = str(tmp_path_factory.mktemp("kb-cache"))


@pytest.fixture(scope="session")
def attack_catalog(_private_cache: None):
    """The real ATT&CK 18.1 bundle, read once per test session."""
    from kb.build import cached_attack

    return cached_attack(ATTACK_BUNDLE)
