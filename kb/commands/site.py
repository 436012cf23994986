"""`kb site`: write the knowledge base as a static, browsable catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kb import render
from kb.commands.common import (
    DEFAULT_DB_PATH,
    DataFormat,
    DbOption,
    Neo4jOption,
    console,
    opened,
    reported_errors,
)
from kb.site import build_site


def site(
    out: Annotated[Path, typer.Argument(
        help="Folder to write the site into: new, empty, or holding an earlier kb site.")],
    format: Annotated[DataFormat, typer.Option("--format", "-f", help="Output format.")] = (
        DataFormat.text),
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """Write a static catalogue: ATT&CK matrix, technique guides, rules, fields, events."""
    with reported_errors(), opened(db, neo4j) as backend:
        report = build_site(backend, out)
    if format is DataFormat.json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    rows = [{"pages": kind, "count": count} for kind, count in sorted(report.pages.items())]
    render.rows_table(console, "Site pages", rows)
    console.print(f"{sum(report.pages.values())} pages, {report.bytes / 1e6:.1f} MB in "
                  f"{report.seconds:.1f} s; largest page {report.largest[0]} "
                  f"({report.largest[1] / 1e3:.0f} kB)", soft_wrap=True)
    console.print(f"Open {(out / 'index.html').resolve().as_uri()}", soft_wrap=True)


COMMANDS = [site]
