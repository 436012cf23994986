"""The `kb` command: build a knowledge base, read technique guides, parse and query rules."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kb import render
from kb.build import SourceInput
from kb.build import build as build_kb
from kb.commands import coverage, site
from kb.commands import neo4j as neo4j_commands
from kb.commands import sources as source_commands
from kb.commands.common import (
    DEFAULT_DB_PATH,
    DataFormat,
    DbOption,
    Format,
    Neo4jOption,
    console,
    errors,
    opened,
    reported_errors,
)
from kb.commands.sources import build_inputs
from kb.demo import DEMO_TECHNIQUE, demo_attack_bundle, demo_sources
from kb.errors import UserError
from kb.parse import parse_paths
from kb.queries import canned_queries, guide, run_query
from kb.report import LoadReport

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each stage.")] = False,
         quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log errors only.")] = False
         ) -> None:
    """kb: an open knowledge base of security detection rules, on a graph."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s",
                        handlers=[RichHandler(console=errors, show_path=False)])
    logging.getLogger("neo4j").setLevel(logging.ERROR)


@app.command()
def build(
    source: Annotated[list[Path] | None, typer.Option(
        "--source", "-s", help="A checkout, folder, .tar.gz or .zip of rules; repeatable "
        "(default: the sources file's sources, as `kb sync` fetched them).",
        show_default=False)] = None,
    attack: Annotated[Path | None, typer.Option(
        help="ATT&CK STIX bundle (.json or .json.gz) (default: the sources file's bundle).",
        show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="The sources file (default: ./kb.yaml, else kb's default "
        "sources).", show_default=False)] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Parse every file again and rebuild the graph whole.")] = False,
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
    report: Annotated[Path | None, typer.Option(
        help="Where to write the JSON load report (default: beside the database).",
        show_default=False)] = None,
) -> None:
    """Build the knowledge base from rule sources and an ATT&CK bundle (rebuilding is safe).

    Only files changed since the last build are parsed again, and the graph is updated in place.
    """
    with reported_errors():
        sources, bundle = build_inputs(source or [], attack, config)
        result = _run_build(sources, bundle, db, neo4j, fresh)
    target = report or (Path("kb-build-report.json") if neo4j else db.with_suffix(".report.json"))
    result.write(target)
    console.print(f"Load report written to {target}", soft_wrap=True)


def _run_build(sources: list[Path] | list[SourceInput], attack: Path, db: Path, neo4j: str,
               fresh: bool = False) -> LoadReport:
    new_database = not neo4j and not db.exists()
    try:
        report = _build_with_progress(sources, attack, db, neo4j, fresh)
    except BaseException:
        if new_database:  # a first build that failed leaves no empty database behind
            from kb.graph.ladybug_backend import remove_database

            remove_database(db)
        raise
    render.load_report(console, report)
    return report


_STAGES = {"attack": "reading ATT&CK", "parse": "parsing rules", "write": "writing the graph"}


def _build_with_progress(sources: list[Path] | list[SourceInput], attack: Path, db: Path,
                         neo4j: str, fresh: bool) -> LoadReport:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with opened(db, neo4j, read_only=False) as backend, \
            Progress(*columns, console=errors, transient=True) as progress:
        task = progress.add_task(_STAGES["attack"], total=None)

        def advance(stage: str, done: int, total: int) -> None:
            progress.update(task, description=_STAGES.get(stage, stage), completed=done,
                            total=total or None)

        return build_kb(sources, attack, backend, progress=advance, fresh=fresh)


@app.command("guide")
def guide_command(
    technique: Annotated[str, typer.Argument(help="ATT&CK technique id, e.g. T1505.")],
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.text,
    subtechniques: Annotated[bool, typer.Option(
        "--subtechniques/--no-subtechniques", help="Take in the sub-techniques.")] = True,
    platform: Annotated[str, typer.Option(help="Only rules for this platform.")] = "",
    domain: Annotated[str, typer.Option(
        help="Only rules of this domain (endpoint, network, cloud, ...).")] = "",
    vendor: Annotated[str, typer.Option(help="Only this vendor's rules.")] = "",
    deprecated: Annotated[bool, typer.Option(
        "--deprecated/--no-deprecated", help="Take in deprecated rules.")] = False,
    limit: Annotated[int, typer.Option(help="Rows per section.", min=1)] = 25,
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """The authoring guide of a technique: events, fields, indicators, exclusions, rules."""
    with reported_errors(), opened(db, neo4j) as backend:
        result = guide(backend, technique, subtechniques, deprecated, platform, domain, vendor,
                       limit)
    if format is Format.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif format is Format.markdown:
        print(render.guide_markdown(result))
    else:
        render.guide_text(console, result)


@app.command()
def parse(
    files: Annotated[list[Path], typer.Argument(help="Rule files, folders or archives.")],
    format: Annotated[DataFormat, typer.Option("--format", "-f", help="Output format.")] = (
        DataFormat.text),
) -> None:
    """Parse rule files into predicates, with no database."""
    with reported_errors():
        records = parse_paths(list(files))
    if format is DataFormat.json:
        print(json.dumps([record.as_dict() for record in records], indent=2))
    else:
        render.parsed_rules(console, records)


@app.command()
def rule(
    uid: Annotated[str, typer.Argument(help="Rule uid, e.g. sigma:<id>.")],
    format: Annotated[DataFormat, typer.Option("--format", "-f", help="Output format.")] = (
        DataFormat.text),
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """One rule: its metadata, text, techniques, event types and predicate rows (with --format
    json, its condition tree too)."""
    with reported_errors(), opened(db, neo4j) as backend:
        rows = run_query(backend, "rule", uid=uid)
        if not rows:
            raise UserError(f"no rule {uid!r} in the knowledge base")
        predicates = run_query(backend, "rule_predicates", uid=uid)
    if format is DataFormat.json:
        rule = {**rows[0], "condition": json.loads(rows[0]["condition"] or "null")}
        print(json.dumps({**rule, "predicates": predicates}, indent=2))
    else:
        render.rule_text(console, rows[0], predicates)


@app.command()
def stats(
    format: Annotated[DataFormat, typer.Option("--format", "-f", help="Output format.")] = (
        DataFormat.text),
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """The catalogue by vendor, where it came from, and the fields left unmapped."""
    with reported_errors(), opened(db, neo4j) as backend:
        rows = run_query(backend, "stats")
        info = run_query(backend, "kb_info")
        unmapped = run_query(backend, "unmapped_fields")
    if format is DataFormat.json:
        print(json.dumps({"vendors": rows, "info": info, "unmapped_fields": unmapped}, indent=2))
    else:
        render.rows_table(console, "Rules by vendor", rows)
        render.rows_table(console, "Build", info)
        render.rows_table(console, "Unmapped fields (no canonical name)", unmapped)


@app.command()
def query(
    name: Annotated[str, typer.Argument(help="Canned query name; leave out to list them.")] = "",
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="key=value; repeatable.", show_default=False)] = None,
    format: Annotated[DataFormat, typer.Option("--format", "-f", help="Output format.")] = (
        DataFormat.text),
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """Run a canned Cypher query by name with parameters."""
    with reported_errors():
        if not name:
            _list_queries(format)
            return
        params = _query_params(name, param or [])
        _note_example_values(name, params)
        with opened(db, neo4j) as backend:
            rows = run_query(backend, name, **params)
    if format is DataFormat.json:
        print(json.dumps(rows, indent=2))
    else:
        render.rows_table(console, name, rows)


def _list_queries(format: DataFormat) -> None:
    queries = canned_queries()
    if format is DataFormat.json:
        print(json.dumps([{"name": q.name, "answers": q.summary, "parameters": q.defaults}
                          for q in queries.values()], indent=2))
    else:
        render.query_list(console, queries)


def _note_example_values(name: str, params: dict[str, Any]) -> None:
    """Say which parameters take the example values of the query's `:params` line."""
    taken = {key: value for key, value in canned_queries()[name].defaults.items()
             if key not in params}
    if taken:
        listed = ", ".join(f"{key}={value!r}" for key, value in taken.items())
        errors.print(f"kb: note: {name} runs with {listed} from its :params line "
                     "(--param key=value to change)", highlight=False, markup=False)


def _query_params(name: str, items: list[str]) -> dict[str, Any]:
    """`key=value` options, each value typed like the query's default for that key."""
    queries = canned_queries()
    if name not in queries:
        raise UserError(f"no canned query named {name!r} (known: {', '.join(queries)})")
    defaults = queries[name].defaults
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--param {item!r}: expected key=value")
        params[key] = _typed_like(defaults.get(key, ""), key, value)
    return params


def _typed_like(default: Any, key: str, value: str) -> Any:
    if isinstance(default, bool):
        if value.lower() not in ("true", "false"):
            raise UserError(f"--param {key}: expected true or false, got {value!r}")
        return value.lower() == "true"
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            raise UserError(f"--param {key}: expected a whole number, got {value!r}") from None
    return value


@app.command()
def demo(
    db: Annotated[Path | None, typer.Option(
        "--db", help="Where to build the demo knowledge base (default: a temporary folder).",
        show_default=False)] = None,
) -> None:
    """Build from the bundled sample rules and ATT&CK subset, then show one guide."""
    with reported_errors(), tempfile.TemporaryDirectory() as scratch:
        target = db or Path(scratch) / "demo.lbug"
        sources = demo_sources()
        _run_build(sources, demo_attack_bundle(), target, "")
        with opened(target, "") as backend:
            result = guide(backend, DEMO_TECHNIQUE)
        render.guide_text(console, result)


for command in coverage.COMMANDS:
    app.command()(command)
for command in site.COMMANDS:
    app.command()(command)
for command in neo4j_commands.COMMANDS:
    app.command()(command)
for command in source_commands.COMMANDS:
    app.command()(command)
