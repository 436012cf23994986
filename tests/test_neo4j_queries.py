"""Every canned query on both engines, and in the Neo4j Browser as its favorite runs it.

On the golden graph with the coverage extension (tests/golden_graph.py), each `cypher/*.cypher`
file must give the same rows on LadybugDB and on Neo4j, and its Browser favorite (kb.browser),
run the way Neo4j Browser runs a script, must give on Neo4j what `kb` gives. The export command
and the Neo4j URI taken from the environment are tested here too.
"""

from __future__ import annotations

import csv
import json
import zipfile
from typing import Any

import pytest
from engines import normalised
from golden_graph import coverage_tables
from typer.testing import CliRunner

from kb.browser import favorite_script, params_commands
from kb.cli import app
from kb.commands.common import EXIT_FAILURE, EXIT_OK, EXIT_USER_ERROR
from kb.demo import demo_attack_bundle, demo_sources
from kb.errors import EngineError
from kb.graph.ladybug_backend import LadybugBackend
from kb.graph.neo4j_import import COMMAND_FILE
from kb.queries import canned_queries, parse_params_line, run_query

runner = CliRunner()

# Parameters that reach the golden graph's rules, where a query's defaults name real ones.
GOLDEN_PARAMS: dict[str, dict[str, Any]] = {
    "rule": {"uid": "sigma:r1"},
    "rule_predicates": {"uid": "sigma:r1"},
    "rule_neighbours": {"uid": "sigma:r1"},
    "field_drilldown": {"field": "alpha"},
    "indicator_drilldown": {"field": "alpha", "op": "ends_with", "value": "x1"},
    "guide_events": {"limit": 2},
    "guide_indicators": {"limit": 3},
    "guide_fields": {"limit": 2},
}
# Queries that answer nothing on the golden graph even so (none today; say why when added).
EMPTY_ON_GOLDEN: set[str] = set()
QUERY_NAMES = sorted(canned_queries())


@pytest.fixture(scope="module")
def ladybug_golden(tmp_path_factory):
    backend = LadybugBackend(tmp_path_factory.mktemp("golden") / "golden.lbug")
    backend.load(coverage_tables())
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def neo4j_golden(neo4j_backend):
    neo4j_backend.load(coverage_tables())
    return neo4j_backend


def run_like_browser(backend, script: str) -> list[dict[str, Any]]:
    """Run a favorite as Neo4j Browser does: comment lines dropped, statements split at `;`
    and run in turn; `:params {...}` read on the client, where every number is a JavaScript
    number (a float on the wire), `:param name => expr` evaluated by the server."""
    text = "\n".join(line for line in script.splitlines() if not line.strip().startswith("//"))
    *commands, query = [part.strip() for part in text.split(";") if part.strip()]
    params: dict[str, Any] = {}
    for command in commands:
        if command.startswith(":params "):
            params = {key: float(value) if type(value) is int else value
                      for key, value in parse_params_line(f"// {command}").items()}
        elif command.startswith(":param "):
            name, _, expression = command.removeprefix(":param ").partition("=>")
            params[name.strip()] = backend.query(f"RETURN {expression} AS value")[0]["value"]
        else:
            raise AssertionError(f"unexpected command {command!r}")
    return backend.query(query, params)


# -- the favorites file ----------------------------------------------------------------------

def test_browser_favorites_zip_holds_every_query_with_its_params_line(tmp_path):
    target = tmp_path / "kb-favorites.zip"

    result = runner.invoke(app, ["export", "--browser-favorites", str(target)])

    assert result.exit_code == EXIT_OK, result.output
    with zipfile.ZipFile(target) as archive:
        scripts = {name: archive.read(name).decode() for name in archive.namelist()}
    assert sorted(scripts) == [f"kb/{name}.cypher" for name in QUERY_NAMES]
    for name, query in canned_queries().items():
        script = scripts[f"kb/{name}.cypher"]
        [params_comment] = [line for line in query.text.splitlines()
                            if line.startswith("// :params {")]
        assert script.startswith(f"// kb {name}: {query.summary}\n")
        assert f"\n{params_comment.removeprefix('// ')};\n" in script
        assert all(f"\n{command};\n" in script for command in params_commands(query))
        assert script.endswith(query.text.split(params_comment, 1)[1].strip() + ";\n")


def test_browser_favorites_keep_integer_parameters_integral():
    query = canned_queries()["guide_events"]

    assert params_commands(query) == [
        ":params {technique: 'T1505', include_subtechniques: true, include_deprecated: false, "
        "platform: '', domain: '', vendor: '', limit: 25}",
        ":param limit => 25",
    ]


def test_browser_favorites_into_a_folder(tmp_path):
    result = runner.invoke(app, ["export", "--browser-favorites", str(tmp_path / "favorites")])

    assert result.exit_code == EXIT_OK, result.output
    written = sorted(path.name for path in (tmp_path / "favorites").iterdir())
    assert written == [f"{name}.cypher" for name in QUERY_NAMES]


def test_export_without_a_target_is_a_user_error():
    result = runner.invoke(app, ["export"])

    assert result.exit_code == EXIT_USER_ERROR
    assert "--neo4j-import DIR and/or --browser-favorites FILE" in result.output


def test_export_neo4j_import_needs_sources(tmp_path):
    result = runner.invoke(app, ["export", "--neo4j-import", str(tmp_path / "import")])

    assert result.exit_code == EXIT_USER_ERROR
    assert "give --source and --attack" in result.output


def test_export_neo4j_import_writes_files_and_the_command(tmp_path):
    out = tmp_path / "import"
    args = ["export", "--neo4j-import", str(out), "--files-dir", "/import",
            "--attack", str(demo_attack_bundle())]
    for source in demo_sources():
        args += ["--source", str(source)]

    result = runner.invoke(app, args)

    assert result.exit_code == EXIT_OK, result.output
    command = (out / COMMAND_FILE).read_text().strip()
    assert command.startswith("neo4j-admin database import full")
    assert "--nodes=Rule=/import/nodes/Rule.header.csv,/import/nodes/Rule.csv" in command
    with (out / "nodes" / "Rule.csv").open(newline="") as rules:
        uids = [row[0] for row in csv.reader(rules)]
    assert len(set(uids)) == len(uids)
    assert {uid.split(":")[0] for uid in uids} == {
        "sigma", "elastic", "splunk", "sentinel", "chronicle", "panther"}
    assert (out / "relationships" / "DETECTS.header.csv").is_file()


# -- the Neo4j URI from the environment -----------------------------------------------------

def test_cli_takes_the_neo4j_uri_from_the_environment():
    result = runner.invoke(app, ["stats"], env={"KB_NEO4J_URI": "bolt://127.0.0.1:9"})

    assert result.exit_code == EXIT_FAILURE
    assert "bolt://127.0.0.1:9: cannot reach Neo4j" in result.output


@pytest.mark.neo4j
def test_cli_reads_neo4j_named_by_the_environment(neo4j_golden):
    env = {"KB_NEO4J_URI": neo4j_golden.uri, "KB_NEO4J_USER": neo4j_golden.user,
           "KB_NEO4J_PASSWORD": neo4j_test_password()}

    result = runner.invoke(app, ["stats", "--format", "json"], env=env)

    assert result.exit_code == EXIT_OK, result.output
    assert [row["vendor"] for row in json.loads(result.output)["vendors"]] == [
        "chronicle", "elastic", "sentinel", "sigma", "splunk"]


def neo4j_test_password() -> str:
    from neo4j_fixtures import neo4j_test_settings

    return neo4j_test_settings()[2]


# -- both engines, and the Browser -----------------------------------------------------------

@pytest.mark.neo4j
@pytest.mark.parametrize("name", QUERY_NAMES)
def test_canned_query_answers_alike_on_both_engines(ladybug_golden, neo4j_golden, name):
    params = GOLDEN_PARAMS.get(name, {})

    on_ladybug = run_query(ladybug_golden, name, **params)
    on_neo4j = run_query(neo4j_golden, name, **params)

    assert normalised(on_neo4j) == normalised(on_ladybug)
    assert bool(on_ladybug) is (name not in EMPTY_ON_GOLDEN)


@pytest.mark.neo4j
@pytest.mark.parametrize("name", QUERY_NAMES)
def test_browser_favorite_answers_on_neo4j_as_kb_does(neo4j_golden, name):
    query = canned_queries()[name]

    rows = run_like_browser(neo4j_golden, favorite_script(query))

    assert rows == run_query(neo4j_golden, name)


@pytest.mark.neo4j
def test_browser_params_line_alone_sends_limit_as_a_float(neo4j_golden):
    query = canned_queries()["guide_events"]
    script = "\n".join(line for line in favorite_script(query).splitlines()
                       if not line.startswith(":param limit"))

    with pytest.raises(EngineError, match=r"LIMIT: Invalid input\. '25\.0'"):
        run_like_browser(neo4j_golden, script)
