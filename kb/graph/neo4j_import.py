"""The bulk path into Neo4j: CSV files for `neo4j-admin database import full`.

For a first load of a large knowledge base, the offline importer is much faster than Bolt
batches. `export_neo4j_import` writes one header file and one data file per label and per
relationship type, described by `kb.graph.schema`, and the command line that imports them.

Format (Neo4j 5 import tool): every node file's key column is `<key>:ID(<Label>)`, one id space
per label, so keys only need to be unique within their label; relationship files have
`:START_ID(<Label>)`, `:END_ID(<Label>)` and `:TYPE`; other columns are typed (`:string`,
`:long`, `:double`, `:boolean`, `:string[]`). Every value is quoted, a quote inside doubled
(RFC 4180); an empty field is null and `""` an empty string. Array elements are joined with the
array delimiter, `;` unless some element contains one: the importer has no escape for it, so
then another delimiter is chosen and named in the command.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kb.graph.backend import GraphTables, Row
from kb.graph.schema import NODES, RELS, NodeSpec, Prop, RelSpec

logger = logging.getLogger(__name__)

COMMAND_FILE = "import-command.txt"

_TYPES = {"STRING": "string", "INT64": "long", "DOUBLE": "double", "BOOLEAN": "boolean",
          "STRING[]": "string[]"}

# Array delimiters to try, as the importer's option spells them, with the character itself.
_ARRAY_DELIMITERS = ((";", ";"), ("|", "|"), ("U+001F", "\x1f"))


class Neo4jImportWriter:
    """A backend that writes import files instead of a graph, so `kb.build.build` can feed the
    bulk path: `load` exports the tables and keeps the command in `self.command`."""

    name = "neo4j-import"

    def __init__(self, out_dir: str | Path, *, database: str = "neo4j",
                 files_dir: str | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.database = database
        self.files_dir = files_dir
        self.command = ""

    def load(self, tables: GraphTables) -> None:
        self.command = export_neo4j_import(tables, self.out_dir, database=self.database,
                                           files_dir=self.files_dir)

    def query(self, text: str, params: dict[str, Any] | None = None) -> list[Row]:
        raise NotImplementedError("queries on import files: import them into Neo4j first")

    def close(self) -> None:
        pass


def export_neo4j_import(tables: GraphTables, out_dir: str | Path, *, database: str = "neo4j",
                        files_dir: str | None = None) -> str:
    """Write the import files into `out_dir` and return the command that imports them.

    `files_dir` is where the command will find the files, when that differs from `out_dir`
    (a container that mounts it elsewhere, e.g. `/import`). The command is also written to
    `out_dir/import-command.txt`.
    """
    out = Path(out_dir)
    option, delimiter = _array_delimiter(tables)
    multiline = _has_line_breaks(tables)
    base = files_dir.rstrip("/") if files_dir else str(out.resolve())

    node_args = [_write_nodes(out, spec, tables.nodes[spec.label], delimiter, base)
                 for spec in NODES]
    rel_args = [_write_rels(out, rel, tables.rels[rel.type], delimiter, base) for rel in RELS]

    command = _command(database, option, multiline, node_args, rel_args)
    (out / COMMAND_FILE).write_text(command + "\n", encoding="utf-8")
    logger.info("wrote neo4j-admin import files to %s", out)
    return command


def _write_nodes(out: Path, spec: NodeSpec, rows: list[Row], delimiter: str,
                 base: str) -> str | None:
    others = tuple(p for p in spec.props if p.name != spec.key)
    header = [f"{spec.key}:ID({spec.label})", *(_column(p) for p in others)]
    lines = ([_field(row[spec.key], delimiter),
              *(_field(row.get(p.name), delimiter, p) for p in others)] for row in rows)
    _write(out / "nodes", spec.label, header, lines)
    logger.info("%s: %d nodes", spec.label, len(rows))
    if not rows:
        return None
    return f"--nodes={spec.label}={_files(base, 'nodes', spec.label)}"


def _write_rels(out: Path, rel: RelSpec, rows: list[Row], delimiter: str,
                base: str) -> str | None:
    header = [f":START_ID({rel.source})", f":END_ID({rel.target})", ":TYPE",
              *(_column(p) for p in rel.props)]
    lines = ([_field(row["_from"], delimiter), _field(row["_to"], delimiter),
              _field(rel.type, delimiter), *(_field(row.get(p.name), delimiter, p)
                                             for p in rel.props)] for row in rows)
    _write(out / "relationships", rel.type, header, lines)
    logger.info("%s: %d relationships", rel.type, len(rows))
    if not rows:
        return None
    return f"--relationships={_files(base, 'relationships', rel.type)}"


def _write(folder: Path, name: str, header: list[str], lines: Iterable[list[str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.header.csv").write_text(",".join(header) + "\n", encoding="utf-8")
    with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as data:
        for line in lines:
            data.write(",".join(line) + "\n")


def _files(base: str, folder: str, name: str) -> str:
    return f"{base}/{folder}/{name}.header.csv,{base}/{folder}/{name}.csv"


def _column(prop: Prop) -> str:
    return f"{prop.name}:{_TYPES[prop.type]}"


def _field(value: Any, delimiter: str, prop: Prop | None = None) -> str:
    """One CSV field: empty for null, booleans and numbers bare, text quoted."""
    if value is None:
        return ""
    if prop is not None and prop.type == "STRING[]":
        return _quote(delimiter.join(str(item) for item in value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _quote(str(value))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _array_delimiter(tables: GraphTables) -> tuple[str, str]:
    items = set()
    for spec, rows in _tables_with_specs(tables):
        for prop in spec.props:
            if prop.type == "STRING[]":
                items.update(str(item) for row in rows for item in row.get(prop.name) or ())
    for option, char in _ARRAY_DELIMITERS:
        if not any(char in item for item in items):
            if char != ";":
                logger.warning("an array element contains ';': using %s as the array delimiter",
                               option)
            return option, char
    raise ValueError("every candidate array delimiter occurs inside an array element")


def _has_line_breaks(tables: GraphTables) -> bool:
    for _, rows in _tables_with_specs(tables):
        for row in rows:
            for value in row.values():
                texts = value if isinstance(value, list | tuple) else (value,)
                if any(isinstance(t, str) and ("\n" in t or "\r" in t) for t in texts):
                    return True
    return False


def _tables_with_specs(tables: GraphTables) -> Iterable[tuple[NodeSpec | RelSpec, list[Row]]]:
    for spec in NODES:
        yield spec, tables.nodes[spec.label]
    for rel in RELS:
        yield rel, tables.rels[rel.type]


def _command(database: str, array_option: str, multiline: bool,
             node_args: list[str | None], rel_args: list[str | None]) -> str:
    # The database comes first: --nodes and --relationships take several files each and
    # would read a trailing name as one more file.
    args = ["neo4j-admin", "database", "import", "full", database, "--overwrite-destination=true",
            "--id-type=string", "--delimiter=,", '--quote="', f"--array-delimiter={array_option}"]
    if multiline:
        args.append("--multiline-fields=true")
    args += [arg for arg in (*node_args, *rel_args) if arg]
    return shlex.join(args)

