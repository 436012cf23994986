"""Splunk security_content detections (YAML with an SPL `search:`) to RuleRecords.

A checkout, folder or archive of https://github.com/splunk/security_content holds detections
under `detections/**` (`detections/deprecated/` for retired ones), the search macros they call
under `macros/`, the data sources they name under `data_sources/` and lookup definitions under
`lookups/`. The macros, data sources and lookups are the shared context; a lone detection file
finds them by walking up to the repository root that has `macros/`.

Each search has its macros expanded (`splunk_macros`), then is parsed into a condition tree
(`splunk_spl`). Event types are the data sources the detection names
(`splunk:data_source/Sysmon EventID 1`) and the data models its search selects
(`splunk:datamodel/Endpoint.Processes`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kb.model import Problem, RuleRecord, Unparsed, broken_record
from kb.sources import RuleFile, Source
from loaders.splunk_macros import Macro, expand
from loaders.splunk_spl import parse_spl

logger = logging.getLogger(__name__)

VENDOR = "splunk"
LANGUAGE = "spl"

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed
_TECHNIQUE = re.compile(r"T\d{4}(?:\.\d{3})?")
_SNIFF_KEYS = ("search", "name", "id")
# Platforms read off data source names (security_content tags no platform of its own).
_PLATFORMS = (
    ("sysmon for linux", "linux"), ("linux", "linux"),
    ("sysmon", "windows"), ("windows", "windows"), ("powershell", "windows"),
    ("wineventlog", "windows"), ("macos", "macos"), ("aws", "aws"), ("azure", "azure"),
    ("gcp", "gcp"), ("google cloud", "gcp"), ("o365", "m365"), ("office 365", "m365"),
    ("okta", "okta"), ("github", "github"), ("kubernetes", "kubernetes"),
    ("g suite", "google_workspace"), ("google workspace", "google_workspace"),
)


@dataclass
class SplunkContext:
    """What every detection of a repository shares: macros, data sources, lookups."""

    macros: dict[str, Macro] = field(default_factory=dict)
    data_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    lookups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    root: str = ""
    lone: bool = False


# ---------------------------------------------------------------------------------------------
# Finding the rules


def detect(source: Source) -> bool:
    paths = source.paths()
    has_detections = any(path.startswith("detections/") and _is_yaml(path) for path in paths)
    return has_detections and any(path.startswith(("macros/", "data_sources/")) for path in paths)


def sniff(path: str, text: str) -> bool:
    if not _is_yaml(path):
        return False
    keys = set(re.findall(r"^([A-Za-z_]+):", text, re.MULTILINE))
    return all(key in keys for key in _SNIFF_KEYS) and bool(keys & {"tags", "type"})


def rule_paths(source: Source) -> list[str]:
    paths = [path for path in source.paths() if path.startswith("detections/") and _is_yaml(path)]
    if paths:
        return paths
    return [path for path in source.paths()
            if _is_yaml(path) and sniff(path, source.read_text(path))]


def _is_yaml(path: str) -> bool:
    return path.endswith((".yml", ".yaml"))


# ---------------------------------------------------------------------------------------------
# The shared context


def load_context(source: Source | None) -> SplunkContext:
    """Macros, data sources and lookups of the source (or of the repository around it)."""
    if source is None:
        return SplunkContext(lone=True)
    if any(path.startswith("macros/") for path in source.paths()):
        return _read_context(source)
    root = _find_root(Path(source.name)) if Path(source.name).is_dir() else None
    if root is not None:
        return _context_at(str(root))
    logger.info("%s: no macros/ folder found; macros stay unexpanded", source.name)
    return SplunkContext(root=source.name)


def _find_root(path: Path) -> Path | None:
    """The nearest folder at or above `path` that holds `macros/`."""
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.parents):
        if (folder / "macros").is_dir():
            return folder
    return None


@cache
def _context_at(root: str) -> SplunkContext:
    return _read_context(Source.open(root))


def _read_context(source: Source) -> SplunkContext:
    context = SplunkContext(root=source.name)
    for path in source.glob("macros/*.yml"):
        doc = _read_yaml(source, path)
        if doc and doc.get("name"):
            context.macros[str(doc["name"])] = _macro(doc)
    for path in source.glob("data_sources/*.yml"):
        doc = _read_yaml(source, path)
        if doc and doc.get("name"):
            context.data_sources[str(doc["name"])] = _data_source(doc)
    for path in source.glob("lookups/*.yml"):
        doc = _read_yaml(source, path)
        if doc and doc.get("name"):
            context.lookups[str(doc["name"])] = _lookup_fields(doc)
    logger.info("%s: %d macros, %d data sources, %d lookups", source.name,
                len(context.macros), len(context.data_sources), len(context.lookups))
    return context


def _read_yaml(source: Source, path: str) -> dict[str, Any] | None:
    try:
        doc = yaml.load(source.read_text(path), Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        logger.warning("%s: cannot read YAML: %s", path, error)
        return None
    return doc if isinstance(doc, dict) else None


def _macro(doc: dict[str, Any]) -> Macro:
    arguments = doc.get("arguments") or []
    definition = doc.get("definition")
    return Macro(str(doc["name"]), "" if definition is None else str(definition),
                 tuple(str(argument) for argument in arguments))


def _data_source(doc: dict[str, Any]) -> dict[str, Any]:
    """A data source as kept for records: where it comes from and how its fields map."""
    name = str(doc["name"])
    event_id = re.search(r"(\d+)\s*$", name)
    return {
        "id": str(doc.get("id", "")),
        "source": str(doc.get("source", "") or ""),
        "sourcetype": str(doc.get("sourcetype", "") or ""),
        "separator": str(doc.get("separator", "") or ""),
        "event_id": event_id.group(1) if event_id and doc.get("separator") else "",
        "field_mappings": doc.get("field_mappings") or [],
        "convert_to_log_source": doc.get("convert_to_log_source") or [],
        "fields": [str(name) for name in doc.get("fields") or []],
    }


def _lookup_fields(doc: dict[str, Any]) -> tuple[str, ...]:
    fields = doc.get("fields_list") or doc.get("fields") or []
    if isinstance(fields, str):
        fields = fields.split(",")
    return tuple(str(name).strip() for name in fields if str(name).strip())


# ---------------------------------------------------------------------------------------------
# Parsing one detection


def parse_file(rule_file: RuleFile, context: SplunkContext | None) -> list[RuleRecord]:
    context = _context_for(rule_file, context)
    try:
        doc = yaml.load(rule_file.text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return [broken_record(VENDOR, rule_file.path, LANGUAGE, "yaml", str(error), line)]
    if not isinstance(doc, dict) or not ({"search", "id"} <= set(doc)):
        return [broken_record(VENDOR, rule_file.path, LANGUAGE, "schema",
                              "not a Splunk detection: no `id` and `search`")]

    record = _record(doc, rule_file.path)
    _add_data_sources(record, doc, context)
    _add_search(record, doc.get("search"), context)

    return [record.finish()]


def _context_for(rule_file: RuleFile, context: SplunkContext | None) -> SplunkContext:
    if context is not None and not context.lone:
        return context
    root = _find_root(Path(rule_file.path))
    return _context_at(str(root)) if root is not None else SplunkContext(lone=True)


def _record(doc: dict[str, Any], path: str) -> RuleRecord:
    tags = doc.get("tags") if isinstance(doc.get("tags"), dict) else {}
    status = str(doc.get("status", "") or "")
    record = RuleRecord(
        vendor=VENDOR,
        native_id=str(doc.get("id") or path),
        title=str(doc.get("name", "") or ""),
        path=path,
        language=LANGUAGE,
        status=status,
        deprecated=status == "deprecated" or "deprecated" in path.split("/")[:-1],
        techniques=_techniques(tags.get("mitre_attack_id")),
    )
    record.properties = {
        "type": str(doc.get("type", "") or ""),
        "version": doc.get("version"),
        "date": str(doc.get("date", "") or ""),
        "analytic_story": [str(story) for story in tags.get("analytic_story") or []],
        "asset_type": str(tags.get("asset_type", "") or ""),
        "security_domain": str(tags.get("security_domain", "") or ""),
        "risk_score": tags.get("risk_score"),
        "confidence": tags.get("confidence"),
        "impact": tags.get("impact"),
        "search": str(doc.get("search", "") or ""),
    }
    if doc.get("datamodel"):
        record.properties["datamodel"] = [str(name) for name in doc["datamodel"]]
    return record


def _techniques(ids: Any) -> tuple[str, ...]:
    found = [str(value).strip().upper() for value in ids or []] if isinstance(ids, list) else []
    return tuple(dict.fromkeys(value for value in found if _TECHNIQUE.fullmatch(value)))


def _add_data_sources(record: RuleRecord, doc: dict[str, Any], context: SplunkContext) -> None:
    """Data source names as event types, with what the data source files say about them."""
    names = _data_source_names(doc.get("data_source"))
    details: dict[str, Any] = {}
    for name in names:
        if name in context.data_sources:
            detail = dict(context.data_sources[name])
            detail.pop("fields", None)
            details[name] = detail
        elif context.data_sources:
            record.problems.append(Problem("data_source", f"unknown data source {name!r}"))
    record.event_types = tuple(f"splunk:data_source/{name}" for name in names)
    record.platforms = _platforms(names)
    record.properties["data_sources"] = names
    record.properties["data_source_details"] = details


def _data_source_names(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value] if value else []
    names: list[str] = []
    for item in values:
        # A few detections join two data sources in one entry: "Sysmon EventID 1 AND ...".
        names.extend(part.strip() for part in str(item).split(" AND ") if part.strip())
    return list(dict.fromkeys(names))


def _platforms(names: list[str]) -> tuple[str, ...]:
    found: list[str] = []
    for name in names:
        lowered = name.lower()
        platform = next((value for key, value in _PLATFORMS if key in lowered), None)
        if platform:
            found.append(platform)
    return tuple(dict.fromkeys(found))


def _add_search(record: RuleRecord, search: Any, context: SplunkContext) -> None:
    text = str(search or "").strip()
    if not text:
        record.parse_status = "no_query"
        return
    expansion = expand(text, context.macros)
    record.properties["macros"] = list(dict.fromkeys(expansion.used))
    try:
        result = parse_spl(expansion.text, expansion.unresolved, context.lookups)
    except (RecursionError, ValueError, LookupError, TypeError) as error:
        # A parser fault must not stop a build: keep the rule, marked unparsed.
        logger.warning("%s: SPL parser fault: %r", record.path, error)
        record.condition = Unparsed(text, f"parser fault: {type(error).__name__}")
        return
    record.condition = result.condition
    record.event_types = tuple(dict.fromkeys((*record.event_types, *result.event_types)))
