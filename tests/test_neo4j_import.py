"""The bulk-import files for neo4j-admin: read back with a CSV reader, and imported for real by
the Neo4j 5.26 importer from the Maven project under neo4j/."""

from __future__ import annotations

import copy
import csv
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from neo4j_fixtures import expected_graph, small_tables

from kb.graph.backend import GraphTables
from kb.graph.neo4j_import import COMMAND_FILE, Neo4jImportWriter, export_neo4j_import
from kb.graph.schema import NODES, RELS

MAVEN_PROJECT = Path(__file__).resolve().parents[1] / "neo4j"


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def _rows(out: Path, folder: str, name: str) -> list[dict[str, str]]:
    header = _read(out / folder / f"{name}.header.csv")[0]
    rows = _read(out / folder / f"{name}.csv")
    assert all(len(row) == len(header) for row in rows)
    return [dict(zip(header, row, strict=True)) for row in rows]


def tricky_tables() -> GraphTables:
    """The small tables plus text that needs care: quotes, commas, a line break, backslashes,
    non-ASCII, and an array element holding the default array delimiter."""
    tables = copy.deepcopy(small_tables())
    tables.nodes["Rule"][0]["title"] = 'Encoded, "hidden"\nPowerShell \\ über'
    tables.nodes["Field"][0]["aliases"] = ["sigma:Image", "odd:a;b"]
    return tables


def test_neo4j_import_headers_follow_the_schema(tmp_path: Path) -> None:
    export_neo4j_import(small_tables(), tmp_path)

    rule = _read(tmp_path / "nodes" / "Rule.header.csv")[0]
    uses = _read(tmp_path / "relationships" / "USES.header.csv")[0]

    assert rule[:3] == ["uid:ID(Rule)", "vendor:string", "native_id:string"]
    assert {"deprecated:boolean", "platforms:string[]", "problem_count:long"} <= set(rule)
    assert uses[:5] == [":START_ID(Rule)", ":END_ID(Value)", ":TYPE", "op:string",
                        "negated:boolean"]
    for spec in NODES:
        header = _read(tmp_path / "nodes" / f"{spec.label}.header.csv")[0]
        assert header[0] == f"{spec.key}:ID({spec.label})"
        assert sorted(column.split(":")[0] for column in header) == sorted(
            p.name for p in spec.props)
    for rel in RELS:
        header = _read(tmp_path / "relationships" / f"{rel.type}.header.csv")[0]
        assert header[:3] == [f":START_ID({rel.source})", f":END_ID({rel.target})", ":TYPE"]
        assert [column.split(":")[0] for column in header[3:]] == [p.name for p in rel.props]


def test_neo4j_import_rows_read_back_with_a_csv_reader(tmp_path: Path) -> None:
    export_neo4j_import(small_tables(), tmp_path)

    assert _rows(tmp_path, "nodes", "Technique")[0] == {
        "id:ID(Technique)": "T1059", "name:string": "Command and Scripting Interpreter",
        "tactics:string[]": "execution", "platforms:string[]": "windows;linux",
        "is_subtechnique:boolean": "false", "parent:string": "", "deprecated:boolean": "false",
        "revoked:boolean": "false", "replaced_by:string": "",
        "url:string": "https://attack.mitre.org/T1059"}
    assert _rows(tmp_path, "relationships", "FILTERS")[2] == {
        ":START_ID(Rule)": "sigma:a1", ":END_ID(Field)": "CommandLine", ":TYPE": "FILTERS",
        "op:string": "eq", "negated:boolean": "true", "exclusion:boolean": "true",
        "raw_field:string": "CommandLine"}
    assert len(_rows(tmp_path, "relationships", "USES")) == 5


def test_neo4j_import_tells_null_from_empty_text(tmp_path: Path) -> None:
    export_neo4j_import(small_tables(), tmp_path)

    lines = (tmp_path / "nodes" / "Technique.csv").read_text(encoding="utf-8").splitlines()

    assert lines[0].split(",")[5] == '""'  # parent: empty text
    assert lines[1].endswith(',false,false,"",')  # replaced_by: empty text; url: null


def test_neo4j_import_quotes_and_escapes_text(tmp_path: Path) -> None:
    command = export_neo4j_import(tricky_tables(), tmp_path)

    rule = _rows(tmp_path, "nodes", "Rule")[0]
    field = _rows(tmp_path, "nodes", "Field")[0]

    assert rule["title:string"] == 'Encoded, "hidden"\nPowerShell \\ über'
    assert "--multiline-fields=true" in shlex.split(command)
    assert "--array-delimiter=|" in shlex.split(command)
    assert field["aliases:string[]"].split("|") == ["sigma:Image", "odd:a;b"]


def test_neo4j_import_uses_semicolons_between_array_elements(tmp_path: Path) -> None:
    command = export_neo4j_import(small_tables(), tmp_path)

    field = _rows(tmp_path, "nodes", "Field")[1]

    assert "--array-delimiter=;" in shlex.split(command)
    assert "--multiline-fields=true" not in shlex.split(command)
    assert field["aliases:string[]"].split(";") == ["sigma:CommandLine",
                                                    "elastic:process.command_line"]


def test_neo4j_import_writes_the_command_it_returns(tmp_path: Path) -> None:
    command = export_neo4j_import(small_tables(), tmp_path, files_dir="/import")

    args = shlex.split(command)

    assert (tmp_path / COMMAND_FILE).read_text(encoding="utf-8") == command + "\n"
    assert args[:5] == ["neo4j-admin", "database", "import", "full", "neo4j"]
    assert "--nodes=Rule=/import/nodes/Rule.header.csv,/import/nodes/Rule.csv" in args
    assert ("--relationships=/import/relationships/USES.header.csv,"
            "/import/relationships/USES.csv") in args
    assert not any("Analytic" in arg or "NEEDS" in arg for arg in args)  # empty: left out


def test_neo4j_import_writer_is_a_backend_that_exports(tmp_path: Path) -> None:
    writer = Neo4jImportWriter(tmp_path, files_dir="/import")

    writer.load(small_tables())

    assert (tmp_path / COMMAND_FILE).read_text(encoding="utf-8") == writer.command + "\n"
    with pytest.raises(NotImplementedError, match="queries on import files"):
        writer.query("RETURN 1")


def _import_check(command: str, work: Path) -> list[dict]:
    """Run the real importer on the files, then dump the imported graph as JSON lines."""
    classpath_file = MAVEN_PROJECT / "target" / "classpath.txt"
    if not classpath_file.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{classpath_file} is missing: .ci/neo4j-start builds it")
        pytest.skip("the Maven test server is not built: run .ci/neo4j-start (docs/neo4j.md)")
    classpath = f"{MAVEN_PROJECT / 'target' / 'classes'}:{classpath_file.read_text().strip()}"
    args = [*shlex.split(command)[1:], "--max-off-heap-memory=128m", "--threads=2"]
    result = subprocess.run(
        ["java", "-Xmx384m", "-XX:+UseSerialGC", "-cp", classpath, "kb.testserver.ImportCheck",
         str(work / "home"), *args],
        cwd=work, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def _imported_graph(lines: list[dict]) -> tuple[list, list]:
    keys = {spec.label: spec.key for spec in NODES}
    nodes = {line["node"]: line for line in lines if "node" in line}
    key_of = {node_id: node["props"][keys[node["labels"][0]]] for node_id, node in nodes.items()}
    graph = GraphTables(nodes={spec.label: [] for spec in NODES}, rels={r.type: [] for r in RELS})
    for node in nodes.values():
        graph.nodes[node["labels"][0]].append(node["props"])
    for line in lines:
        if "rel" in line:
            graph.rels[line["rel"]].append(
                {"_from": key_of[line["from"]], "_to": key_of[line["to"]], **line["props"]})
    return expected_graph(graph)


@pytest.mark.neo4j
def test_neo4j_import_files_load_into_neo4j_unchanged(tmp_path: Path) -> None:
    tables = tricky_tables()
    command = export_neo4j_import(tables, tmp_path / "files")

    imported = _imported_graph(_import_check(command, tmp_path))

    # The importer cannot write an empty array: such a property is absent after a bulk import
    # (a later Neo4jBackend.load writes it).
    for rows in tables.nodes.values():
        for row in rows:
            for name in [k for k, v in row.items() if v == []]:
                del row[name]
    assert imported == expected_graph(tables)
