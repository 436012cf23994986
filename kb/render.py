"""How the CLI shows results: rich tables for people, markdown for pages."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kb.model import RuleRecord
from kb.queries import CannedQuery, Guide
from kb.report import LoadReport

Row = dict[str, Any]
_VALUE_WIDTH = 60


def _short(value: Any, width: int = _VALUE_WIDTH) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def rows_table(console: Console, title: str, rows: list[Row]) -> None:
    if not rows:
        console.print(f"[bold]{title}[/]: no rows")
        return
    console.print(_table(title, list(rows[0]), [list(row.values()) for row in rows]))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    return table(title, columns, [[_short(value) for value in row] for row in rows])


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table whose columns of counts are right-aligned."""
    made = Table(title=title, title_justify="left", title_style="bold")
    for index, column in enumerate(columns):
        counts = bool(rows) and all(_is_count(row[index]) for row in rows)
        made.add_column(column, overflow="fold", justify="right" if counts else "left")
    for row in rows:
        made.add_row(*(_cell(value) for value in row))
    return made


def _cell(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _is_count(value: Any) -> bool:
    """A count, or counts like `12/340`."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or bool(_COUNTS.fullmatch(str(value)))


_COUNTS = re.compile(r"\d+(/\d+)*")


# --- the guide --------------------------------------------------------------------------------


def _operators(operators: dict[str, int]) -> str:
    return " · ".join(f"{op} {count}" for op, count in operators.items())


def _guide_sections(result: Guide) -> list[tuple[str, list[str], list[list[Any]]]]:
    sections = [
        ("Events covered", ["Event type", "Rules"],
         [[e["event_type"], e["rules"]] for e in result.events]),
        ("Fields filtered most", ["Field", "Rules", "Operators", "Sample values"],
         [[f.field, f.rules, _operators(f.operators), f.sample_values] for f in result.fields]),
        ("Top indicators", ["Field", "Op", "Value", "Rules", "Reach"],
         [[i["field"], i["op"], i["value"], i["rules"], i["reach"]] for i in result.indicators]),
        ("Exclusions", ["Field", "Op", "Value", "Rules"],
         [[x["field"], x["op"], x["value"], x["rules"]] for x in result.exclusions]),
    ]
    for vendor, rules in result.rules_by_vendor.items():
        sections.append((f"Rules: {vendor} ({len(rules)})",
                         ["Title", "Techniques", "Status", "Severity", "Parsed", "UID"],
                         [[r["title"], r["techniques"], r["status"], r["severity"],
                           r["parse_status"], r["uid"]] for r in rules]))
    return sections


def _headline(result: Guide) -> str:
    t = result.technique
    return (f"{t['id']} {t['name']}\n"
            + _status_line(t)
            + f"Tactics: {', '.join(t['tactics'])}   Platforms: {', '.join(t['platforms'])}\n"
            f"Rules: {t['rules']}{_filtered_count(result)}   "
            f"Sub-techniques: {t['subtechniques']}   "
            f"ATT&CK {result.sources.get('attack_version', '?')}"
            + _source_line(result.sources))


def _status_line(technique: dict[str, Any]) -> str:
    """Why a technique may have no rules: ATT&CK revoked or deprecated it."""
    if technique["revoked"]:
        replacement = technique.get("replaced_by")
        return (f"Revoked by ATT&CK: its rules are under {replacement}\n" if replacement
                else "Revoked by ATT&CK, with no replacement\n")
    return "Deprecated by ATT&CK\n" if technique["deprecated"] else ""


def _filtered_count(result: Guide) -> str:
    if not result.filters:
        return ""
    matching = sum(len(rules) for rules in result.rules_by_vendor.values())
    chosen = ", ".join(f"{facet} {value}" for facet, value in result.filters.items())
    return f" ({matching} with {chosen})"


def _source_line(facts: dict[str, str]) -> str:
    """`Sources: sigma at 8eaafff1f284 (2026-08-05), ...` from the KbInfo `source:` facts."""
    sources = [f"{key.removeprefix('source:')}: {value}" for key, value in sorted(facts.items())
               if key.startswith("source:")]
    return f"\nSources: {'; '.join(sources)}" if sources else ""


def guide_text(console: Console, result: Guide) -> None:
    console.print(Panel(_headline(result), title="Authoring guide", title_align="left"))
    for title, columns, rows in _guide_sections(result):
        if rows:
            console.print(_table(title, columns, rows))
        else:
            console.print(f"[bold]{title}[/]: none")


def guide_markdown(result: Guide) -> str:
    lines = [f"# {result.technique['id']} {result.technique['name']}", ""]
    lines += [line + "  " for line in _headline(result).splitlines()[1:]]
    for title, columns, rows in _guide_sections(result):
        lines += ["", f"## {title}", ""]
        if not rows:
            lines.append("None.")
            continue
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        lines += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _markdown_cell(value: Any) -> str:
    return _short(value).replace("|", "\\|").replace("\n", " ")


# --- rules, reports, queries ------------------------------------------------------------------


def parsed_rules(console: Console, records: list[RuleRecord]) -> None:
    for record in records:
        console.print(f"[bold]{record.uid}[/] {record.title} "
                      f"([italic]{record.language}[/], {record.parse_status})", highlight=False)
        if record.techniques or record.event_types:
            console.print(f"  techniques: {', '.join(record.techniques) or '-'}   "
                          f"event types: {', '.join(record.event_types) or '-'}", highlight=False)
        rows = [[p.field, p.canonical_field, p.op, p.value, p.negated, p.exclusion]
                for p in record.predicates]
        if rows:
            console.print(_table("", ["Field", "Canonical", "Op", "Value", "Negated",
                                      "Exclusion"], rows))
        for problem in record.problems:
            place = f"{record.path}:{problem.line}" if problem.line else record.path
            console.print(f"  [yellow]{place}: {problem.kind}: {problem.message}[/]",
                          highlight=False)


def rule_text(console: Console, rule: Row, predicates: list[Row]) -> None:
    facts = {k: v for k, v in rule.items()
             if k not in ("properties", "title", "text", "condition")}
    body = "\n".join(f"{key}: {_short(value, 90)}" for key, value in facts.items())
    console.print(Panel(body, title=rule["title"], title_align="left"))
    if rule.get("text"):
        console.print(Panel(Text(rule["text"].rstrip()), title="Rule text", title_align="left"))
    console.print(_table("Predicates (as indicators, and as the rule writes them)",
                         ["Field", "Op", "Value", "As written", "Negated", "Exclusion"],
                         [[p["field"], p["op"], p["value"], f"{p['raw_field']}: {p['raw_value']}",
                           _yes(p["negated"]), _yes(p["exclusion"])] for p in predicates]))


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def load_report(console: Console, report: LoadReport) -> None:
    rows = []
    for vendor, figures in sorted(report.vendors.items()):
        status = figures.parse_status
        rows.append([vendor, figures.rules, status.get("full", 0), status.get("partial", 0),
                     status.get("none", 0), status.get("no_query", 0), figures.deprecated,
                     f"{figures.unmapped_rows}/{figures.predicate_rows}"])
    how = report.build
    build = (f", {'incremental' if how['mode'] == 'delta' else 'full'} build: "
             f"{how['parsed']} of {how['rule_files']} files parsed"
             + (f", {how['from_cache']} from the parse cache" if how.get("from_cache") else "")
             ) if how else ""
    console.print(_table(f"Load report (ATT&CK {report.attack_version}, {report.seconds} s"
                         f"{build})",
                         ["Vendor", "Rules", "Full", "Partial", "None", "No query",
                          "Deprecated", "Unmapped"], rows))
    problems = [[vendor, kind, count] for vendor, f in sorted(report.vendors.items())
                for kind, count in f.problems.items()]
    if problems:
        console.print(_table("Problems by kind", ["Vendor", "Kind", "Problems"], problems))
        console.print("Each problem names its rule and file in the JSON report.")
    unmapped = [[vendor, name, count] for vendor, f in sorted(report.vendors.items())
                for name, count in list(f.unmapped_fields.items())[:10]]
    if unmapped:
        console.print(_table("Unmapped fields (top 10 per vendor)", ["Vendor", "Field", "Rules"],
                             unmapped))
    if report.redirects:
        console.print(f"{len(report.redirects)} technique tags followed a revocation to the "
                      "current technique (listed in the JSON report).")
    if report.duplicates:
        console.print(f"{len(report.duplicates)} duplicate rule ids were loaded once "
                      "(listed in the JSON report).")


def query_list(console: Console, queries: dict[str, CannedQuery]) -> None:
    console.print(table("Canned queries", ["Name", "Answers", "Parameters"],
                        [[q.name, q.summary, ", ".join(q.defaults)] for q in queries.values()]))
