"""Python helpers over the canned Cypher in `cypher/*.cypher`.

Open a knowledge base, run any canned query by name with parameters (its defaults come from
the `:params` line in the file's header, the same line Neo4j Browser users run), or ask for a
technique's authoring guide as typed results. The CLI calls only these helpers.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from kb.errors import EngineError, UserError
from kb.graph.backend import Backend, Row

logger = logging.getLogger(__name__)

DEFAULT_DB = "kb.lbug"
_TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")


@dataclass(frozen=True)
class CannedQuery:
    name: str
    text: str
    summary: str
    defaults: dict[str, Any]


@cache
def canned_queries() -> dict[str, CannedQuery]:
    """Every canned query shipped in the `cypher` package, by file stem."""
    queries = {}
    for entry in sorted(resources.files("cypher").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".cypher"):
            text = entry.read_text(encoding="utf-8")
            name = entry.name.removesuffix(".cypher")
            queries[name] = CannedQuery(name, text, _summary(text), parse_params_line(text))
    return queries


def _summary(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return first.removeprefix("//").strip()


_PARAMS_LINE = re.compile(r"^// :params (\{.*\})\s*$", re.MULTILINE)
_PARAM_ITEM = re.compile(r"\s*(\w+)\s*:\s*('(?:[^'\\]|\\.)*'|true|false|-?\d+)\s*(?:,|$)")


def parse_params_line(text: str) -> dict[str, Any]:
    """The parameters of a query's `// :params {...}` header line, as Python values.

    The line holds a Cypher map with identifier keys and string, integer or boolean values.
    """
    match = _PARAMS_LINE.search(text)
    if not match:
        return {}
    body = match.group(1)[1:-1].strip()
    params: dict[str, Any] = {}
    position = 0
    while position < len(body):
        item = _PARAM_ITEM.match(body, position)
        if not item:
            raise ValueError(f"unreadable :params line at {body[position:]!r}")
        params[item.group(1)] = _cypher_literal(item.group(2))
        position = item.end()
    return params


def _cypher_literal(text: str) -> Any:
    if text.startswith("'"):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    return int(text)


def run_query(backend: Backend, name: str, **params: Any) -> list[Row]:
    """Run a canned query by name; parameters not given take the header's defaults."""
    queries = canned_queries()
    if name not in queries:
        raise UserError(f"no canned query named {name!r} (known: {', '.join(queries)})")
    query = queries[name]
    unknown = set(params) - set(query.defaults)
    if unknown:
        raise UserError(f"query {name!r} takes no parameter {', '.join(sorted(unknown))} "
                        f"(it takes: {', '.join(query.defaults) or 'none'})")
    return backend.query(query.text, {**query.defaults, **params})


def open_kb(db: str | Path | None = None, neo4j: str | None = None,
            read_only: bool = True) -> Backend:
    """Open a knowledge base: a Neo4j server when a URI is given, else a LadybugDB file."""
    if neo4j:
        from kb.graph.neo4j_backend import Neo4jBackend

        return Neo4jBackend(neo4j)
    from kb.graph.ladybug_backend import LadybugBackend

    path = Path(db or DEFAULT_DB)
    if read_only and not path.exists():
        raise UserError(f"{path}: no knowledge base here (run `kb build` first)")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        backend = LadybugBackend(path, read_only=read_only)
    except EngineError as error:  # not a database, a folder, or one another build holds
        raise UserError(f"{error} (is it a knowledge base kb built?)") from error
    if read_only and not backend.holds_graph():
        backend.close()
        raise UserError(f"{path}: the database is empty, a build did not finish (run `kb build`)")
    return backend


# --- the authoring guide --------------------------------------------------------------------


@dataclass
class FieldUse:
    field: str
    rules: int
    operators: dict[str, int]
    sample_values: list[str]


@dataclass
class Guide:
    technique: dict[str, Any]
    events: list[Row] = field(default_factory=list)
    fields: list[FieldUse] = field(default_factory=list)
    indicators: list[Row] = field(default_factory=list)
    exclusions: list[Row] = field(default_factory=list)
    rules_by_vendor: dict[str, list[Row]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    filters: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SAMPLE_VALUES = 5


def guide(backend: Backend, technique: str, include_subtechniques: bool = True,
          include_deprecated: bool = False, platform: str = "", domain: str = "",
          vendor: str = "", limit: int = 25) -> Guide:
    """The authoring guide of one technique (and, unless told not to, its sub-techniques)."""
    asked, technique = technique, technique.strip().upper()
    if not _TECHNIQUE_ID.match(technique):
        raise UserError(f"{asked!r} is not an ATT&CK technique id (like T1505 or T1505.003)")
    scope = {"technique": technique, "include_subtechniques": include_subtechniques,
             "include_deprecated": include_deprecated}
    header = run_query(backend, "technique", **scope)
    if not header:
        raise UserError(f"unknown technique {technique}")
    chosen = _known_filter_values(backend, {"platform": platform, "domain": domain,
                                            "vendor": vendor})
    filters = {**scope, "platform": "", "domain": "", "vendor": "", **chosen}
    result = Guide(technique=header[0], filters=chosen)
    result.events = run_query(backend, "guide_events", **filters, limit=limit)
    result.fields = _field_uses(run_query(backend, "guide_fields", **filters, limit=limit))
    result.indicators = run_query(backend, "guide_indicators", **filters, limit=limit)
    result.exclusions = run_query(backend, "guide_exclusions", **filters, limit=limit)
    for row in run_query(backend, "guide_rules", **filters):
        result.rules_by_vendor.setdefault(row["vendor"], []).append(row)
    result.sources = {row["key"]: row["value"] for row in run_query(backend, "kb_info")}
    return result


def _known_filter_values(backend: Backend, filters: dict[str, str]) -> dict[str, str]:
    """The filters given, each matched without regard to case against the values the rules
    have; a value no rule has is a user error that lists the values there are."""
    chosen = {facet: value.strip() for facet, value in filters.items() if value.strip()}
    if not chosen:
        return {}
    known: dict[str, dict[str, str]] = {facet: {} for facet in chosen}
    for row in run_query(backend, "rule_facets"):
        if row["facet"] in known and row["value"]:
            known[row["facet"]][row["value"].lower()] = row["value"]
    for facet, value in chosen.items():
        if value.lower() not in known[facet]:
            raise UserError(f"no rule has {facet} {value!r} "
                            f"(known: {', '.join(sorted(known[facet].values())) or 'none'})")
        chosen[facet] = known[facet][value.lower()]
    return chosen


def _field_uses(rows: list[Row]) -> list[FieldUse]:
    uses: dict[str, FieldUse] = {}
    for row in rows:
        use = uses.setdefault(row["field"], FieldUse(row["field"], row["rules"], {}, []))
        use.operators[row["op"]] = row["op_rules"]
        room = SAMPLE_VALUES - len(use.sample_values)
        use.sample_values.extend(sorted(row["sample_values"])[:max(room, 0)])
    return list(uses.values())
