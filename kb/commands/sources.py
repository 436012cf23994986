"""`kb sync` and `kb diff`: fetch the sources a sources file names, and compare two builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kb import render
from kb.build import SourceInput
from kb.commands.common import DataFormat, console, errors, reported_errors
from kb.config import load_config
from kb.diff import Diff, compare
from kb.sync import attack_path, read_lock, resolve
from kb.sync import sync as sync_sources

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="The sources file (default: ./kb.yaml, else kb's default sources).",
    show_default=False)]


def sync(
    config: ConfigOption = None,
    locked: Annotated[bool, typer.Option(
        "--locked", help="Fetch exactly what the lock file records.")] = False,
    source: Annotated[list[str] | None, typer.Option(
        "--source", "-s", help="Only this source (by name); repeatable.",
        show_default=False)] = None,
    format: Annotated[DataFormat, typer.Option("--format", "-f", help="Output format.")] = (
        DataFormat.text),
) -> None:
    """Fetch or update the rule sources and the ATT&CK bundle into the cache; record the lock."""
    with reported_errors():
        settings = load_config(config)
        result = sync_sources(settings, locked=locked, only=tuple(source or ()))
    if format is DataFormat.json:
        typer.echo(json.dumps({"lock": str(settings.lock_path),
                               "outcomes": [vars(o) for o in result.outcomes]}, indent=2))
    else:
        for outcome in result.outcomes:
            if outcome.ok:
                console.print(f"{outcome.name}: {outcome.message}", highlight=False,
                              soft_wrap=True)
        if not locked:
            console.print(f"Lock written to {settings.lock_path}", highlight=False,
                          soft_wrap=True)
    for outcome in result.failed:
        errors.print(f"kb: {outcome.name}: {outcome.message}", highlight=False, soft_wrap=True)
    if result.failed:
        raise typer.Exit(1)


def diff(
    old: Annotated[str, typer.Argument(help="The earlier knowledge base (.lbug file, Neo4j "
                                            "URI) or lock file.")],
    new: Annotated[str, typer.Argument(help="The later one, of the same kind.")],
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="Rules listed per kind of change (text).")] = 50,
    format: Annotated[DataFormat, typer.Option("--format", "-f", help="Output format.")] = (
        DataFormat.text),
) -> None:
    """What changed between two builds or two lock files: rules and technique coverage.

    Rules added, removed and changed per vendor, and the techniques whose coverage moved.
    """
    with reported_errors():
        result = compare(old, new, config)
    if format is DataFormat.json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        diff_text(result, limit)


def diff_text(result: Diff, limit: int) -> None:
    if result.info:
        render.rows_table(console, "Sources and ATT&CK",
                          [{"key": k, "old": o, "new": n} for k, o, n in result.info])
    vendors = result.by_vendor()
    if not vendors and not result.coverage:
        console.print("No rule changed.")
        return
    render.rows_table(console, "Rules by vendor",
                      [{"vendor": v, **counts} for v, counts in vendors.items()])
    for kind in ("added", "removed", "changed"):
        rows = [{"vendor": c.vendor, "uid": c.uid, "title": c.title,
                 **({"what": ", ".join(c.parts)} if kind == "changed" else {})}
                for c in result.rules if c.change == kind]
        if rows:
            render.rows_table(console, f"Rules {kind} ({len(rows)})", rows[:limit])
            if len(rows) > limit:
                console.print(f"... and {len(rows) - limit} more (--limit, or --format json)")
    if result.coverage:
        render.rows_table(console, f"Coverage changed ({len(result.coverage)})", [
            {"technique": c.technique, "name": c.name, "vendor": c.vendor, "before": c.before,
             "after": c.after} for c in result.coverage[:limit]])


def build_inputs(paths: list[Path], attack: Path | None, config: Path | None
                 ) -> tuple[list[Path] | list[SourceInput], Path]:
    """What `kb build` reads: the sources given, else the sources file's (as synced); the
    bundle given, else the sources file's."""
    if paths and attack:
        return paths, attack
    settings = load_config(config)
    if paths:
        lock = read_lock(settings.lock_path) if settings.lock_path.is_file() else None
        return paths, attack_path(settings, lock)
    inputs, bundle = resolve(settings)
    return inputs, attack or bundle


COMMANDS = [sync, diff]
