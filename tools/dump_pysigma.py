"""Dump what pySigma's backend pipelines do to each Sigma field, as a CSV of field mappings.

Run in the generators' own virtualenv (the backends pin pysigma<2; see tools/requirements.txt):

    /tmp/gen-venv/bin/python -m tools.dump_pysigma ../shared/corpora \
        > tools/data/pysigma_mappings.csv

Every (logsource, field) pair the Sigma snapshot uses, and every Sigma field the pipelines' own
mapping tables name under the main Windows logsources, becomes a one-item Sigma rule; each
pipeline is applied to it and the field it ends up as, with the table, data model or UDM event
type the pipeline chose, is one output row. Nothing is typed by hand: a pair a pipeline refuses
(an unsupported field or logsource) gives no row.
"""

from __future__ import annotations

import csv
import logging
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from sigma.pipelines.azuremonitor import azure_monitor_pipeline
from sigma.pipelines.azuremonitor.mappings import AZURE_MONITOR_FIELD_MAPPINGS
from sigma.pipelines.elasticsearch import ecs_kubernetes, ecs_macos_esf, ecs_windows, ecs_zeek_beats
from sigma.pipelines.elasticsearch.windows import ecs_windows_variable_mappings
from sigma.pipelines.microsoftxdr import microsoft_xdr_pipeline
from sigma.pipelines.microsoftxdr.mappings import MICROSOFT_XDR_FIELD_MAPPINGS
from sigma.pipelines.panther import panther_pipeline
from sigma.pipelines.secops import secops_udm_pipeline
from sigma.pipelines.secops.mappings import get_field_mappings
from sigma.pipelines.sentinelasim import sentinel_asim_pipeline
from sigma.pipelines.sentinelasim.mappings import SENTINEL_ASIM_FIELD_MAPPINGS
from sigma.pipelines.splunk import splunk_cim_data_model
from sigma.rule import SigmaDetection, SigmaRule

logger = logging.getLogger(__name__)

SIGMA_ARCHIVE = "sigmahq-sigma.tar.gz"
COLUMNS = ("pipeline", "product", "category", "service", "sigma_field", "target_field",
           "target_context")

# (origin name, pipeline factory, the pipeline state key naming the target's table or model)
PIPELINES: tuple[tuple[str, Callable[[], Any], str], ...] = (
    ("pysigma-backend-elasticsearch:ecs_windows", ecs_windows, ""),
    ("pysigma-backend-elasticsearch:ecs_zeek_beats", ecs_zeek_beats, ""),
    ("pysigma-backend-elasticsearch:ecs_kubernetes", ecs_kubernetes, ""),
    ("pysigma-backend-elasticsearch:ecs_macos_esf", ecs_macos_esf, ""),
    ("pysigma-backend-splunk:splunk_cim", splunk_cim_data_model, "data_model_set"),
    ("pysigma-backend-kusto:microsoft_xdr", microsoft_xdr_pipeline, "query_table"),
    ("pysigma-backend-kusto:sentinel_asim", sentinel_asim_pipeline, "query_table"),
    ("pysigma-backend-kusto:azure_monitor", azure_monitor_pipeline, "query_table"),
    ("pysigma-backend-secops:secops_udm", secops_udm_pipeline, ""),
    ("pysigma-backend-panther:panther", panther_pipeline, ""),
)
WINDOWS_LOGSOURCES = tuple(
    {"product": "windows", "category": category} for category in (
        "process_creation", "file_event", "file_access", "file_change", "file_delete",
        "file_rename", "image_load", "network_connection", "registry_add", "registry_delete",
        "registry_event", "registry_set", "dns_query", "process_access", "create_remote_thread",
        "pipe_created", "driver_load", "ps_script", "ps_module")
) + tuple({"product": "windows", "service": s} for s in ("security", "system", "sysmon"))


def sigma_pairs(corpora: Path) -> set[tuple[tuple[str, str, str], str]]:
    """Every (logsource, field) pair the Sigma snapshot's detections use."""
    pairs = set()
    with tarfile.open(corpora / SIGMA_ARCHIVE) as archive:
        for member in archive:
            if not member.isfile() or not member.name.endswith(".yml"):
                continue
            document = _yaml(archive.extractfile(member).read())
            if not isinstance(document, dict) or not isinstance(document.get("detection"), dict):
                continue
            logsource = _logsource(document.get("logsource") or {})
            pairs.update((logsource, field) for field in _fields(document["detection"]))
    return pairs


def _yaml(data: bytes) -> Any:
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError:
        return None


def _logsource(logsource: dict[str, Any]) -> tuple[str, str, str]:
    return tuple(str(logsource.get(key) or "") for key in ("product", "category", "service"))


def _fields(detection: dict[str, Any]) -> Iterator[str]:
    """Field names of a detection: the keys of its selections' maps (lists of maps too)."""
    for name, selection in detection.items():
        if name == "condition":
            continue
        maps = selection if isinstance(selection, list) else [selection]
        for item in maps:
            if isinstance(item, dict):
                yield from (field for key in item if (field := str(key).split("|")[0]))


def mapping_fields() -> set[str]:
    """Sigma field names the pipelines' own mapping tables know."""
    fields = set(ecs_windows_variable_mappings)
    for mappings in (MICROSOFT_XDR_FIELD_MAPPINGS, SENTINEL_ASIM_FIELD_MAPPINGS,
                     AZURE_MONITOR_FIELD_MAPPINGS):
        fields.update(mappings.generic_mappings)
        for table in mappings.table_mappings.values():
            fields.update(table)
    for table in get_field_mappings().values():
        fields.update(table)
    return fields


def all_pairs(corpora: Path) -> list[tuple[tuple[str, str, str], str]]:
    pairs = sigma_pairs(corpora)
    for logsource in WINDOWS_LOGSOURCES:
        key = _logsource(logsource)
        pairs.update((key, field) for field in mapping_fields())
    return sorted(pairs)


def apply(factory: Callable[[], Any], state_key: str, logsource: tuple[str, str, str],
          field: str) -> tuple[list[str], str] | None:
    """The fields a one-item rule ends up as, and the pipeline's table or model; None if refused."""
    rule = SigmaRule.from_dict({
        "title": "probe",
        "logsource": {k: v for k, v in zip(("product", "category", "service"), logsource,
                                           strict=True) if v},
        "detection": {"selection": {field: "probe"}, "condition": "selection"},
    })
    pipeline = factory()
    try:
        pipeline.apply(rule)
    except Exception as error:  # each backend raises errors of its own
        logger.debug("%s %s: %s", logsource, field, error)
        return None
    fields = _item_fields(rule.detection.detections["selection"])
    context = str(pipeline.state.get(state_key, "")) if state_key else ""
    if not context:
        context = ",".join(sorted(rule.custom_attributes.get("event_types", []) or []))
    return fields, context


def _item_fields(detection: Any) -> list[str]:
    if isinstance(detection, SigmaDetection):
        return [f for item in detection.detection_items for f in _item_fields(item)]
    return [detection.field] if detection.field else []


def dump(corpora: Path, out: Any) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    rows = 0
    for logsource, field in all_pairs(corpora):
        for name, factory, state_key in PIPELINES:
            result = apply(factory, state_key, logsource, field)
            if result is None:
                continue
            targets, context = result
            for target in dict.fromkeys(targets):
                if target == field and not context:
                    continue  # the pipeline left the field alone: no mapping to record
                writer.writerow((name, *logsource, field, target, context))
                rows += 1
    return rows


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    corpora = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/corpora")
    rows = dump(corpora, sys.stdout)
    logger.info("%d pipeline mappings", rows)


if __name__ == "__main__":
    main()
