"""Generate kb's field alias table from authoritative sources.

    python -m tools.gen_aliases [../shared/corpora]

writes `kb/data/field_aliases.csv` (vendor, context, field, canonical, origin) and
`kb/data/canonical_fields.csv` (name, namespace). It reads, in order of precedence:

1. `tools/data/kb_aliases.csv`: kb's own decisions, where no source exists or a source is wrong
   for kb's purpose (each with its reason); origin `kb`.
2. `tools/data/pysigma_mappings.csv`: what pySigma's backend pipelines do to each Sigma field
   (made by `tools.dump_pysigma` in its own virtualenv). Sigma fields map to ECS through
   pysigma-backend-elasticsearch; a vendor's field maps back to the ECS name of the Sigma field
   that the vendor's backend pipeline turns into it (Splunk CIM, Microsoft XDR, ASIM, Azure
   Monitor, Google SecOps UDM).
3. Splunk's `data_sources/*.yml` field mappings (raw field to CIM field, and Sysmon field to
   Windows Security 4688 field).
4. ECS 9.5.0 (`ecs_flat.json.gz`) and Elastic's non-ECS and Beats schemas, from the Elastic
   snapshot: identity maps for the fields Elastic rules use natively.
5. The event taxonomy (`kb/data/event_taxonomy.yml`): a telemetry that carries a Sigma
   logsource's field names (Sysmon events in Splunk, SecurityEvent in Sentinel) takes that
   logsource's mapping.

Only fields the snapshots' rules use get rows: the loaders read every snapshot first. A field
whose contexts all agree gets one `*` row; otherwise one row per context it is used in.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import json
import logging
import os
import pickle
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from kb.events import sigma_logsource
from kb.normalize import PATH_NAME_FIELDS, normalise
from kb.sources import Source

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tools" / "data"
OUT = ROOT / "kb" / "data"
VENDORS = ("sigma", "elastic", "splunk", "sentinel", "chronicle", "panther")
ARCHIVES = {
    "sigma": "sigmahq-sigma.tar.gz", "elastic": "elastic-detection-rules.tar.gz",
    "splunk": "splunk-security_content.tar.gz", "sentinel": "azure-sentinel-2022-02.tar.gz",
    "chronicle": "chronicle-detection-rules.tar.gz", "panther": "panther-analysis.tar.gz",
}
ECS_PIPELINES = ("pysigma-backend-elasticsearch:",)
WINLOG_PREFIX = "winlog.event_data."
# Elastic objects whose keys are the source's own names (Winlogbeat's event data, integrations').
ELASTIC_OBJECTS = (WINLOG_PREFIX, "aws.cloudtrail.", "azure.", "okta.", "gcp.audit.", "o365.audit.",
                   "kubernetes.audit.", "google_workspace.", "github.", "zeek.", "endgame.",
                   "file.Ext.", "user.Ext.", "group.Ext.", "process.Ext.", "kibana.alert.")
MULTI_FIELDS = (".caseless", ".text", ".keyword", ".wildcard")
# Which backend pipeline speaks for which vendor, and how its table or model names a context.
BACKENDS = {
    "pysigma-backend-splunk:splunk_cim": ("splunk", "splunk:datamodel/{}"),
    "pysigma-backend-kusto:microsoft_xdr": ("sentinel", "sentinel:table/{}"),
    "pysigma-backend-kusto:sentinel_asim": ("sentinel", "sentinel:asim/{}"),
    "pysigma-backend-kusto:azure_monitor": ("sentinel", "sentinel:table/{}"),
    "pysigma-backend-secops:secops_udm": ("chronicle", "chronicle:udm/{}"),
    "pysigma-backend-panther:panther": ("panther", "*"),
}


@dataclass(frozen=True)
class Mapping:
    canonical: str
    origin: str


# --- reading the sources -------------------------------------------------------------------


def corpus_usage(corpora: Path) -> dict[tuple[str, str], Counter[str]]:
    """(vendor, field) to the rules using it per event-type context, over every snapshot.

    Set KB_GEN_CACHE to a file path to keep this between runs while editing kb_aliases.csv.
    """
    cache = os.environ.get("KB_GEN_CACHE")
    if cache and Path(cache).is_file():
        return pickle.loads(Path(cache).read_bytes())
    usage = _read_usage(corpora)
    if cache:
        Path(cache).write_bytes(pickle.dumps(usage))
    return usage


def _read_usage(corpora: Path) -> dict[tuple[str, str], Counter[str]]:
    usage: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for vendor in VENDORS:
        loader = importlib.import_module(f"loaders.{vendor}")
        source = Source.open(corpora / ARCHIVES[vendor])
        context = loader.load_context(source)
        for path in loader.rule_paths(source):
            for record in loader.parse_file(source.rule_file(path), context):
                normalise(record)
                fields = {r.field for r in record.predicates if r.field and not r.computed}
                for field in fields:
                    usage[(vendor, field)].update(record.event_types or ("*",))
        logger.info("%s: read", vendor)
    return usage


def elastic_schemas(corpora: Path) -> tuple[set[str], set[str]]:
    """ECS field names, and the other field names Elastic's schemas define."""
    etc = "detection_rules/etc/"
    ecs: set[str] = set()
    other: set[str] = set()
    with tarfile.open(corpora / ARCHIVES["elastic"]) as archive:
        for member in archive:
            name = member.name.split("/", 1)[-1]
            if name == etc + "ecs_schemas/9.5.0/ecs_flat.json.gz":
                ecs.update(json.loads(gzip.decompress(_read(archive, member))))
            elif name == etc + "non-ecs-schema.json":
                for fields in json.loads(_read(archive, member)).values():
                    other.update(fields)
            elif name == etc + "beats_schemas/v9.5.0.json.gz":
                other.update(_beats_fields(json.loads(gzip.decompress(_read(archive, member)))))
            elif name == etc + "endpoint_schemas/endpoint_process.json.gz":
                other.update(_flat_keys(json.loads(gzip.decompress(_read(archive, member)))))
    return ecs, other - ecs


def _read(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    return handle.read() if handle else b""


def _beats_fields(node: Any, prefix: str = "") -> Iterator[str]:
    """Flat names of a Beats `fields.yml` tree (groups nest their fields under their name)."""
    if isinstance(node, list):
        for item in node:
            yield from _beats_fields(item, prefix)
    elif isinstance(node, dict):
        if "name" in node and isinstance(node["name"], str) and "fields" not in node:
            yield prefix + node["name"]
            return
        inner = prefix
        if node.get("type") == "group" and isinstance(node.get("name"), str):
            inner = prefix + node["name"] + "."
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from _beats_fields(value, inner if key == "fields" else prefix)


def _flat_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        yield from (str(key) for key in node if "." in str(key))


def splunk_data_sources(corpora: Path) -> list[dict[str, Any]]:
    sources = []
    with tarfile.open(corpora / ARCHIVES["splunk"]) as archive:
        for member in archive:
            if "/data_sources/" in member.name and member.name.endswith(".yml"):
                document = yaml.safe_load(_read(archive, member))
                if isinstance(document, dict):
                    sources.append(document)
    return sources


def pysigma_rows() -> list[dict[str, str]]:
    with open(DATA / "pysigma_mappings.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def kb_rows() -> list[dict[str, str]]:
    with open(DATA / "kb_aliases.csv", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(_uncommented(handle))]


def _uncommented(handle: io.TextIOBase) -> Iterator[str]:
    return (line for line in handle if line.strip() and not line.startswith("#"))


def sigma_key(row: dict[str, str]) -> str:
    parts = [row[k] for k in ("product", "category", "service") if row[k]]
    return "sigma:" + "/".join(parts)


# --- resolving -----------------------------------------------------------------------------


class Resolver:
    """Decides the canonical field of (vendor, context, field) from the loaded sources."""

    def __init__(self, corpora: Path) -> None:
        self.ecs, self.elastic = elastic_schemas(corpora)
        self.kb = kb_rows()
        self.sigma: dict[tuple[str, str], Mapping] = {}
        self.backend: dict[tuple[str, str, str], Counter[Mapping]] = defaultdict(Counter)
        self._load_pysigma()
        self._load_splunk(splunk_data_sources(corpora))

    def _load_pysigma(self) -> None:
        rows = pysigma_rows()
        for row in rows:
            if row["pipeline"].startswith(ECS_PIPELINES):
                key = (sigma_key(row), row["sigma_field"])
                self.sigma.setdefault(key, Mapping(strip_multi(row["target_field"]),
                                                   row["pipeline"]))
        for row in rows:
            backend = BACKENDS.get(row["pipeline"])
            canonical = self.sigma_field(sigma_key(row), row["sigma_field"])
            if backend is None or canonical is None:
                continue
            vendor, context_form = backend
            contexts = [context_form.format(c) for c in row["target_context"].split(",") if c]
            for context in contexts or ["*"]:
                key = (vendor, context, row["target_field"])
                self.backend[key][Mapping(canonical.canonical, row["pipeline"])] += 1

    def _load_splunk(self, sources: list[dict[str, Any]]) -> None:
        """Splunk data sources: raw to CIM field mappings, and Sysmon to 4688 field names."""
        for source in sources:
            context = f"splunk:data_source/{source.get('name', '')}"
            sigma = sigma_logsource(context)
            for mapping in source.get("field_mappings") or []:
                dataset = str(mapping.get("data_set", ""))
                for raw, cim in (mapping.get("mapping") or {}).items():
                    raw_field, _, modifier = str(raw).partition("|")
                    canonical = self.sigma_field(sigma, raw_field) if sigma else None
                    if canonical is None:
                        continue
                    name = canonical.canonical
                    if modifier == "endswith":  # the last path component: the name field
                        name = PATH_NAME_FIELDS.get(name, "")
                    if name and modifier in ("", "endswith"):
                        key = ("splunk", f"splunk:datamodel/{dataset}", str(cim))
                        self.backend[key][Mapping(name, "splunk-data_sources")] += 1
            for convert in source.get("convert_to_log_source") or []:
                target = f"splunk:data_source/{convert.get('data_source', '')}"
                for raw, field in (convert.get("mapping") or {}).items():
                    canonical = self.sigma_field(sigma, str(raw)) if sigma else None
                    if canonical and "|" not in str(raw) and "|" not in str(field):
                        key = ("splunk", target, str(field))
                        self.backend[key][Mapping(canonical.canonical, "splunk-data_sources")] += 1

    def sigma_field(self, context: str, field: str) -> Mapping | None:
        """A Sigma field's ECS name under a Sigma logsource key."""
        found = self.sigma.get((context, field))
        if found is None:
            product, _, rest = context.removeprefix("sigma:").partition("/")
            if product in ("linux", "macos") and rest:
                found = self.sigma.get((f"sigma:windows/{rest}", field))
                if found and found.canonical.startswith("winlog."):
                    found = None
        if (found is None or found.canonical.startswith(WINLOG_PREFIX)) \
                and context.startswith("sigma:windows/"):
            # ecs_windows only prefixes a field it has no mapping for under this logsource; a
            # Windows field it maps explicitly for process creation means the same here.
            explicit = self.sigma.get(("sigma:windows/process_creation", field))
            if explicit and not explicit.canonical.startswith(WINLOG_PREFIX):
                found = Mapping(explicit.canonical,
                                explicit.origin + " (as in windows/process_creation)")
        if found is None and field in self.ecs:
            found = Mapping(field, "ecs")
        return found

    def resolve(self, vendor: str, context: str, field: str) -> Mapping | None:
        return (self._kb(vendor, context, field) or self._kb(vendor, "*", field)
                or self._native(vendor, context, field))

    def _kb(self, vendor: str, context: str, field: str) -> Mapping | None:
        for row in self.kb:
            if row["vendor"] == vendor and row["field"] == field and \
                    (row["context"] == context or
                     (row["context"] != "*" and fnmatchcase(context, row["context"]))):
                return Mapping(row["canonical"], "kb")
        return None

    def _native(self, vendor: str, context: str, field: str) -> Mapping | None:
        if vendor == "sigma":
            return self.sigma_field(context, field)
        if vendor == "elastic":
            return self._elastic(field)
        found = self._backend(vendor, context, field)
        sigma = sigma_logsource(context)
        if found is None and sigma:
            found = self.sigma_field(sigma, field)
            if found:
                found = Mapping(found.canonical, f"{found.origin} via {sigma}")
        return found

    def _backend(self, vendor: str, context: str, field: str) -> Mapping | None:
        candidates = [context, context.rsplit("/", 1)[0] if context.count("/") > 1 else ""]
        if vendor == "splunk" and "." in field:
            candidates += [f"splunk:datamodel/{m}" for m in _datamodels(field)]
        for candidate in (*candidates, "*"):
            votes = self.backend.get((vendor, candidate, field))
            if votes:
                return votes.most_common(1)[0][0]
        if vendor == "splunk":
            return self._unprefixed_cim(field)
        return self._any_context(vendor, field)

    def _any_context(self, vendor: str, field: str) -> Mapping | None:
        """The mapping most of the vendor's backend contexts give a field (UDM paths are global)."""
        votes: Counter[Mapping] = Counter()
        for (name, _, target), counts in self.backend.items():
            if name == vendor and target == field:
                votes.update(counts)
        return votes.most_common(1)[0][0] if votes else None

    def _unprefixed_cim(self, field: str) -> Mapping | None:
        """A CIM field written without its dataset prefix, when every dataset agrees on it."""
        found = {votes.most_common(1)[0][0].canonical: votes.most_common(1)[0][0]
                 for (vendor, _, name), votes in self.backend.items()
                 if vendor == "splunk" and name.split(".", 1)[-1] == field and "." in name}
        if len(found) == 1:
            mapping = next(iter(found.values()))
            return Mapping(mapping.canonical, mapping.origin + " (unprefixed CIM)")
        return None

    def _elastic(self, field: str) -> Mapping | None:
        base = strip_multi(field)
        if base in self.ecs:
            return Mapping(base, "ecs")
        if base in self.elastic or field in self.elastic:
            return Mapping(base, "elastic-schema")
        return None


def _datamodels(field: str) -> list[str]:
    dataset = field.split(".", 1)[0]
    return [f"Endpoint.{dataset}", dataset, f"{dataset}.{dataset}"]


def strip_multi(field: str) -> str:
    for suffix in MULTI_FIELDS:
        if field.endswith(suffix):
            return field.removesuffix(suffix)
    return field


# --- writing -------------------------------------------------------------------------------


def alias_rows(usage: dict[tuple[str, str], Counter[str]],
               resolver: Resolver) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for (vendor, field), contexts in sorted(usage.items()):
        decided = {context: resolver.resolve(vendor, context, field) for context in contexts}
        mapped = {c: m for c, m in decided.items() if m is not None}
        if not mapped:
            continue
        canonicals = {m.canonical for m in mapped.values()}
        if len(canonicals) == 1:  # where the sources tell, they agree: one row for any context
            best = Counter({m: contexts[c] for c, m in mapped.items()}).most_common(1)[0][0]
            rows.append((vendor, "*", field, best.canonical, best.origin))
            continue
        rows.extend((vendor, context, field, m.canonical, m.origin)
                    for context, m in sorted(mapped.items()))
    return rows


def namespace(name: str, resolver: Resolver) -> str:
    if name in resolver.ecs:
        return "ecs"
    if name in resolver.elastic or name.startswith(ELASTIC_OBJECTS):
        return "elastic"
    return "kb"


def write(rows: list[tuple[str, str, str, str, str]], resolver: Resolver) -> None:
    with open(OUT / "field_aliases.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("vendor", "context", "field", "canonical", "origin"))
        writer.writerows(rows)
    canonicals = sorted({row[3] for row in rows})
    with open(OUT / "canonical_fields.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("name", "namespace"))
        writer.writerows((name, namespace(name, resolver)) for name in canonicals)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    corpora = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/corpora")
    resolver = Resolver(corpora)
    usage = corpus_usage(corpora)
    rows = alias_rows(usage, resolver)
    write(rows, resolver)
    logger.info("%d aliases for %d used fields", len(rows), len(usage))


if __name__ == "__main__":
    main()
