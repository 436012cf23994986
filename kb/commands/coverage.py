"""Coverage commands: gaps, coverage with the telemetry you have, Navigator layers, vendor
comparison and drill-downs. Each calls a helper in `kb.coverage` and only renders."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from kb import coverage as cov
from kb import render
from kb.commands.common import (
    DEFAULT_DB_PATH,
    DataFormat,
    DbOption,
    Neo4jOption,
    console,
    errors,
    opened,
    reported_errors,
)
from kb.errors import UserError

FormatOption = Annotated[DataFormat, typer.Option("--format", "-f", help="Output format.")]
VendorOption = Annotated[list[str] | None, typer.Option(
    "--vendor", help="Only this vendor's rules; repeatable.", show_default=False)]
RollUpOption = Annotated[bool, typer.Option(
    "--roll-up/--no-roll-up",
    help="Count a parent technique as covered by its sub-techniques' rules.")]
LimitOption = Annotated[int, typer.Option(help="Rows per table (0: all); JSON is never cut.")]


class GapKind(StrEnum):
    no_rule = "no_rule"
    only_experimental = "only_experimental"
    one_vendor = "one_vendor"


class Score(StrEnum):
    vendors = "vendors"
    rules = "rules"


class DrillKind(StrEnum):
    field = "field"
    indicator = "indicator"
    event = "event"
    rule = "rule"


def _emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[Any]], limit: int = 0) -> None:
    if not rows:
        console.print(f"[bold]{title}[/]: none")
        return
    shown = rows[:limit] if limit else rows
    more = f" (first {len(shown)} of {len(rows)})" if len(shown) < len(rows) else ""
    console.print(render.table(title + more, columns, shown))


def gaps(
    tactic: Annotated[list[str] | None, typer.Option(
        help="Only techniques of this tactic (shortname, name or TA id); repeatable.",
        show_default=False)] = None,
    platform: Annotated[str, typer.Option(
        help="Only techniques of this ATT&CK platform (Windows, IaaS, ...), counting the rules "
             "that may run on it.")] = "",
    vendor: VendorOption = None,
    kind: Annotated[list[GapKind] | None, typer.Option(
        help="Only gaps of this kind; repeatable.", show_default=False)] = None,
    roll_up: RollUpOption = True,
    log_sources: Annotated[bool, typer.Option(
        "--log-sources", help="List instead the techniques whose needed log sources (ATT&CK "
                              "analytics) no rule observes.")] = False,
    limit: LimitOption = 50,
    format: FormatOption = DataFormat.text,
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """Techniques with no rule, only experimental or deprecated rules, or one vendor's rules.

    Ranked most consequential first: no rule, then only experimental/deprecated rules, then
    one vendor's live rules; within a kind, fewer mature then fewer live rules first, then
    techniques ATT&CK writes more detection analytics for, then those on more platforms.
    Experimental means a status word other than stable, test, production or none (see
    docs/coverage.md). The last column counts the data components ATT&CK's analytics need
    that no rule observes.
    """
    with reported_errors(), opened(db, neo4j) as backend:
        if log_sources:
            found, feeds = cov.log_source_gaps(backend, vendor or (), blind_only=True)
        else:
            result = cov.gaps(backend, tactic or (), platform, vendor or (),
                              [k.value for k in kind or ()], roll_up)
    if log_sources:
        _log_source_output(found, feeds, format, limit)
    elif format is DataFormat.json:
        _emit([gap.as_dict() for gap in result])
    else:
        _gaps_text(result, limit)


def _gaps_text(result: list[cov.Gap], limit: int) -> None:
    counts = {k: sum(1 for g in result if g.kind == k) for k in cov.GAP_KINDS}
    console.print("Gaps: " + ", ".join(f"{k} {n}" for k, n in counts.items()), highlight=False)
    _table("Gaps, most consequential first",
           ["Technique", "Name", "Kind", "Live rules", "Mature", "Vendors", "Analytics",
            "Unobserved DCs", "Tactics"],
           [[g.id, g.name, g.kind, g.live_rules, g.mature_rules, g.vendors, g.analytics,
             f"{g.unobserved_components}/{g.data_components}", g.tactics] for g in result],
           limit)


def _log_source_output(found: list[cov.LogSourceGap], feeds: bool, format: DataFormat,
                       limit: int) -> None:
    if not feeds:
        errors.print("kb: note: no event type feeds an ATT&CK data component in this graph "
                     "(FEEDS is empty), so every log source counts as unobserved")
    if format is DataFormat.json:
        _emit([gap.as_dict() for gap in found])
        return
    _table("Techniques whose needed log sources no rule observes",
           ["Technique", "Name", "Data components", "Log sources"],
           [[g.id, g.name, [c["name"] for c in g.unobserved],
             sorted({s for c in g.unobserved for s in c["log_sources"]})] for g in found], limit)


def coverage(
    have: Annotated[list[str] | None, typer.Option(
        "--have", help="Telemetry you collect: an event-type key or pattern "
                       "(sigma:windows/*), a taxonomy category (process_creation), a telemetry "
                       "name (\"Sysmon EventID 1\") or a piece of one (sysmon); repeatable.",
        show_default=False)] = None,
    have_file: Annotated[Path | None, typer.Option(
        help="A file of such names, one a line (# comments).", show_default=False)] = None,
    vendor: VendorOption = None,
    roll_up: RollUpOption = True,
    suggestions: Annotated[int, typer.Option(help="Extra event sources to suggest.")] = 5,
    limit: LimitOption = 25,
    format: FormatOption = DataFormat.text,
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """What the catalogue detects with only your telemetry, and what one more source would add.

    Lists the techniques detected and lost, the rules that fall out, and the extra event
    sources that would add the most techniques. A rule runs when any one of its event types
    is available (see docs/coverage.md).
    """
    with reported_errors():
        names = [*(have or []), *(cov.read_have_file(have_file) if have_file else [])]
        if not names:
            raise UserError("name the telemetry you have with --have or --have-file")
        with opened(db, neo4j) as backend:
            result = cov.coverage_with(backend, names, vendor or (), roll_up, suggestions)
    if format is DataFormat.json:
        _emit(result.as_dict())
    else:
        _coverage_text(result, limit)


def _coverage_text(result: cov.TelemetryCoverage, limit: int) -> None:
    for name, meaning in result.have.items():
        console.print(f"[bold]{name}[/]: {', '.join(meaning)}", highlight=False)
    console.print(
        f"Rules that run: {result.rules_kept} of {result.rules_considered} "
        f"({result.rules_unknown} more name no event type); techniques detected: "
        f"{len(result.techniques)}, lost: {len(result.techniques_lost)}", highlight=False)
    _table("Best extra event source", ["Source", "Techniques gained", "Rules gained"],
           [[a["source"], a["techniques_gained"], a["rules_gained"]]
            for a in result.best_additions])
    _table("Techniques detected", ["Technique", "Name", "Rules"],
           [[t["id"], t["name"], t["rules"]] for t in result.techniques], limit)
    _table("Techniques lost", ["Technique", "Name", "Rules"],
           [[t["id"], t["name"], t["rules"]] for t in result.techniques_lost], limit)
    _table("Rules that fall out", ["Rule", "Title", "Event types"],
           [[r["uid"], r["title"], r["event_types"]] for r in result.rules_out], limit)


def navigator(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the layer (JSON).")],
    vendor: VendorOption = None,
    platform: Annotated[str, typer.Option(
        help="Only rules that may run on this ATT&CK platform; also the layer's filter.")] = "",
    score: Annotated[Score, typer.Option(
        help="Score techniques by vendors with live rules, or by live rules.")] = Score.vendors,
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """Write an ATT&CK Navigator layer of rule coverage, checked by loading it back."""
    with reported_errors():
        with opened(db, neo4j) as backend:
            layer = cov.navigator_layer(backend, vendor or (), platform, score.value)
        count = cov.write_layer(layer, out)
    console.print(f"Wrote {out}: {count} techniques, Navigator layer "
                  f"{layer['versions']['layer']}, {layer['domain']}, ATT&CK "
                  f"{layer['versions']['attack']}", highlight=False, soft_wrap=True)


def compare(
    vendor: Annotated[str, typer.Argument(help="A vendor, e.g. sigma.")],
    other: Annotated[str, typer.Argument(help="Another vendor, e.g. elastic.")],
    limit: Annotated[int, typer.Option(help="Indicators shown per shared technique.")] = 5,
    format: FormatOption = DataFormat.text,
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """Techniques one vendor covers and the other not, and indicators each lacks on shared ones.

    Techniques are compared as tagged (no roll-up); indicators are (field, op, value) in the
    folded form the guide shows, unnegated, used by live rules.
    """
    with reported_errors(), opened(db, neo4j) as backend:
        result = cov.compare(backend, vendor, other, limit)
    if format is DataFormat.json:
        _emit(result.as_dict())
        return
    a, b = result.vendor, result.other
    console.print(f"{a} only: {len(result.only_vendor)}, {b} only: {len(result.only_other)}, "
                  f"shared: {len(result.shared)}", highlight=False)
    for mine, name in ((result.only_vendor, a), (result.only_other, b)):
        _table(f"Only {name}", ["Technique", "Name", "Rules"],
               [[t["id"], t["name"], t["rules"]] for t in mine], 50)
    _table("Shared techniques: indicators one uses and the other lacks",
           ["Technique", "Name", f"Rules {a}/{b}", f"Only {a}", f"Only {b}", f"Sample {a}",
            f"Sample {b}"],
           [[s["id"], s["name"], f"{s['rules'][a]}/{s['rules'][b]}", s["only_in"][a],
             s["only_in"][b], [_indicator(i) for i in s["samples"][a]],
             [_indicator(i) for i in s["samples"][b]]] for s in result.shared], 50)


def _indicator(row: dict[str, Any]) -> str:
    return f"{row['field']} {row['op']} {row['value']}"


_DRILL_ARGS = {DrillKind.field: ["FIELD"], DrillKind.indicator: ["FIELD", "OP", "VALUE"],
               DrillKind.event: ["EVENT_TYPE"], DrillKind.rule: ["UID"]}


def drill(
    kind: Annotated[DrillKind, typer.Argument(help="What to drill into.")],
    args: Annotated[list[str], typer.Argument(
        help="field FIELD | indicator FIELD OP VALUE | event EVENT_TYPE | rule UID",
        show_default=False)],
    include_deprecated: Annotated[bool, typer.Option(
        "--deprecated/--no-deprecated", help="Take in deprecated rules.")] = False,
    limit: LimitOption = 25,
    format: FormatOption = DataFormat.text,
    db: DbOption = DEFAULT_DB_PATH,
    neo4j: Neo4jOption = "",
) -> None:
    """Drill down into a field, an indicator, an event type, or a rule's neighbours.

    field FIELD, indicator FIELD OP VALUE and event EVENT_TYPE list the rules behind them and
    their techniques; rule UID lists the rules sharing most indicators with it.
    """
    with reported_errors():
        if len(args) != len(_DRILL_ARGS[kind]):
            raise UserError(f"drill {kind.value} takes {' '.join(_DRILL_ARGS[kind])}")
        with opened(db, neo4j) as backend:
            result = _drill(backend, kind, args, include_deprecated, limit)
    if format is DataFormat.json:
        _emit(result if isinstance(result, list) else result.as_dict())
    elif isinstance(result, list):
        _table(f"Rules sharing most indicators with {args[0]}",
               ["Rule", "Title", "Vendor", "Shared", "Indicators", "Similarity"],
               [[r["uid"], r["title"], r["vendor"], r["shared"], r["indicators"],
                 r["similarity"]] for r in result])
    else:
        _drill_text(result, limit)


def _drill(backend, kind: DrillKind, args: list[str], include_deprecated: bool, limit: int):
    if kind is DrillKind.field:
        return cov.drill_field(backend, args[0], include_deprecated)
    if kind is DrillKind.indicator:
        return cov.drill_indicator(backend, *args, include_deprecated=include_deprecated)
    if kind is DrillKind.event:
        return cov.drill_event_type(backend, args[0], include_deprecated)
    return cov.rule_neighbours(backend, args[0], limit or 10, include_deprecated)


def _drill_text(result: cov.Drill, limit: int) -> None:
    subject = ", ".join(f"{k} {v}" for k, v in result.subject.items() if v)
    console.print(f"[bold]{subject}[/]: {len(result.rules)} rules, "
                  f"{len(result.techniques)} techniques", highlight=False)
    _table("Techniques", ["Technique", "Name", "Rules", "Vendors"],
           [[t["id"], t["name"], t["rules"], [f"{v} {n}" for v, n in t["vendors"].items()]]
            for t in result.techniques], limit)
    _table("Rules", ["Rule", "Title", "Status", "Techniques"],
           [[r["uid"], r["title"], r["status"], r["techniques"]] for r in result.rules], limit)


COMMANDS = [gaps, coverage, navigator, compare, drill]
