"""Neo4j extras: `kb export` writes the bulk-import files for `neo4j-admin database import full`
(from a build of the given sources) and the canned queries as Neo4j Browser favorites."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kb.browser import write_favorites
from kb.build import build as build_kb
from kb.commands.common import console, reported_errors
from kb.errors import UserError
from kb.graph.neo4j_import import COMMAND_FILE, Neo4jImportWriter


def export(
    neo4j_import: Annotated[Path | None, typer.Option(
        "--neo4j-import", help="Build, and write neo4j-admin import files into this folder.",
        show_default=False)] = None,
    browser_favorites: Annotated[Path | None, typer.Option(
        "--browser-favorites",
        help="Write the canned queries as Neo4j Browser favorites: a .zip, or else a folder.",
        show_default=False)] = None,
    source: Annotated[list[Path] | None, typer.Option(
        "--source", "-s", help="With --neo4j-import: a rule source, as for `kb build`.",
        show_default=False)] = None,
    attack: Annotated[Path | None, typer.Option(
        help="With --neo4j-import: the ATT&CK STIX bundle.", show_default=False)] = None,
    files_dir: Annotated[str, typer.Option(
        help="With --neo4j-import: where the importer will see the folder, e.g. /import in "
             "the Compose service (default: the folder itself).", show_default=False)] = "",
    database: Annotated[str, typer.Option(
        help="With --neo4j-import: the database the command imports into.")] = "neo4j",
) -> None:
    """Export for Neo4j: bulk-import files of a build, or Browser favorites of the queries."""
    with reported_errors():
        if neo4j_import is None and browser_favorites is None:
            raise UserError("name what to export: --neo4j-import DIR and/or "
                            "--browser-favorites FILE")
        if browser_favorites is not None:
            written = write_favorites(browser_favorites)
            console.print(f"Browser favorites written to {written}", soft_wrap=True)
        if neo4j_import is not None:
            command = _export_import(neo4j_import, source or [], attack, files_dir, database)
            console.print(f"Import files written to {neo4j_import}; the command "
                          f"(also in {neo4j_import / COMMAND_FILE}):", soft_wrap=True)
            console.print(command, markup=False, highlight=False, soft_wrap=True)


def _export_import(out_dir: Path, sources: list[Path], attack: Path | None, files_dir: str,
                   database: str) -> str:
    if not sources or attack is None:
        raise UserError("--neo4j-import builds the knowledge base: give --source and --attack")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")
    writer = Neo4jImportWriter(out_dir, database=database, files_dir=files_dir or None)
    build_kb(sources, attack, writer)
    return writer.command


COMMANDS = [export]
