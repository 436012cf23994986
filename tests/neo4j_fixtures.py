"""Fixtures for tests that need a real Neo4j: the test server `.ci/neo4j-start` runs.

The server is named by KB_TEST_NEO4J_URI (with KB_TEST_NEO4J_USER, KB_TEST_NEO4J_PASSWORD).
Without it the tests are skipped with the reason shown, except under CI=true, where a missing
server is a failure: CI must never pass by skipping the engine.

Use: `from neo4j_fixtures import neo4j_backend, neo4j_server  # noqa: F401` in a conftest or a
test module, then ask for `neo4j_backend` (a clean graph per test module).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache

import pytest

from kb.graph.neo4j_backend import Neo4jBackend


def neo4j_test_settings() -> tuple[str, str, str] | None:
    """The test server's URI, user and password, or None when no server is configured."""
    uri = os.environ.get("KB_TEST_NEO4J_URI", "")
    if not uri:
        return None
    return (uri, os.environ.get("KB_TEST_NEO4J_USER", "neo4j"),
            os.environ.get("KB_TEST_NEO4J_PASSWORD", "kb-test-password"))


@cache
def _shared_backend(uri: str, user: str, password: str) -> Neo4jBackend:
    """One connection per session, even when two modules import these fixtures."""
    return Neo4jBackend(uri, user, password)


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[Neo4jBackend]:
    """A backend on the test server, for the whole session."""
    settings = neo4j_test_settings()
    if settings is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but KB_TEST_NEO4J_URI is not set: .ci/run must start the test "
                        "server (eval \"$(.ci/neo4j-start)\")")
        pytest.skip("no Neo4j test server: run eval \"$(.ci/neo4j-start)\" to set "
                    "KB_TEST_NEO4J_URI (see docs/neo4j.md)")
    backend = _shared_backend(*settings)
    yield backend
    backend.close()
    _shared_backend.cache_clear()


@pytest.fixture(scope="module")
def neo4j_backend(neo4j_server: Neo4jBackend) -> Neo4jBackend:
    """The session's backend on an empty graph: wiped before each test module."""
    neo4j_server.wipe()
    return neo4j_server
