"""Incremental builds on Neo4j: a delta written without reading the graph, and a full load from
the parse cache (the backend's `load` writes only the difference); either way the graph equals
a clean build's."""

from __future__ import annotations

import pytest
import test_incremental
from test_incremental import SIGMA_RULE, graph_of, sigma_file

from kb import build as build_module
from kb.build import build
from kb.demo import demo_attack_bundle
from kb.diff import comparable, stored_tables
from kb.graph.ladybug_backend import LadybugBackend
from kb.graph.neo4j_backend import Neo4jBackend

pytestmark = pytest.mark.neo4j
catalogue_files = test_incremental.catalogue_files
catalogue = test_incremental.catalogue


def neo4j_graph(backend: Neo4jBackend) -> dict[str, list[str]]:
    return comparable(stored_tables(backend))


def clean_graph(tmp_path, sources) -> dict[str, list[str]]:
    db = tmp_path / "clean.lbug"
    backend = LadybugBackend(db)
    build(sources, demo_attack_bundle(), backend, fresh=True)
    backend.close()
    return graph_of(db)


def test_incremental_neo4j_rebuild_equals_a_clean_build(neo4j_backend, tmp_path, catalogue,
                                                         monkeypatch):
    build(catalogue, demo_attack_bundle(), neo4j_backend)
    changed = sigma_file(catalogue[0])
    changed.write_text(changed.read_text().replace(
        "    condition: ", "    kb_extra:\n        CommandLine|contains: 'kb-neo4j'\n"
        "    condition: kb_extra or ", 1))
    sigma_file(catalogue[0], 1).unlink()
    parsed = []
    original = build_module.parse_files

    def counting(opened, tasks, progress):
        parsed.extend(tasks)
        return original(opened, tasks, progress)

    monkeypatch.setattr(build_module, "parse_files", counting)

    report = build(catalogue, demo_attack_bundle(), neo4j_backend)

    assert [path for _, path in parsed] == [f"{SIGMA_RULE}{changed.name}"]
    assert report.build["mode"] == "delta"
    stored, clean = neo4j_graph(neo4j_backend), clean_graph(tmp_path, catalogue)
    assert [name for name in stored if stored[name] != clean[name]] == []
    assert report.graph["Rule"] == len(clean["Rule"])


def test_incremental_neo4j_graph_loaded_elsewhere_gets_a_full_load(neo4j_backend, tmp_path,
                                                                   catalogue):
    build(catalogue, demo_attack_bundle(), neo4j_backend)
    state = neo4j_backend.state_path.read_bytes()
    build(catalogue[:3], demo_attack_bundle(), neo4j_backend)
    neo4j_backend.state_path.write_bytes(state)
    sigma_file(catalogue[0], 2).unlink()

    report = build(catalogue, demo_attack_bundle(), neo4j_backend)

    assert (report.build["mode"], report.build["parsed"]) == ("full", 0)
    stored, clean = neo4j_graph(neo4j_backend), clean_graph(tmp_path, catalogue)
    assert [name for name in stored if stored[name] != clean[name]] == []
