"""MITRE ATT&CK from a STIX bundle (`.json` or `.json.gz`), read with mitreattack-python.

The result is an `AttackCatalog` of plain values, cheap to cache as JSON: reading the 18.1
bundle with mitreattack-python takes over ten seconds, so a build reuses the catalogue while
the bundle's bytes are unchanged.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.errors import SourceError

if TYPE_CHECKING:
    import stix2
    from mitreattack.stix20 import MitreAttackData

logger = logging.getLogger(__name__)


@dataclass
class AttackCatalog:
    """What kb needs from an ATT&CK bundle, as plain JSON-able values."""

    domain: str = ""
    version: str = ""
    techniques: list[dict[str, Any]] = field(default_factory=list)
    tactics: list[dict[str, Any]] = field(default_factory=list)
    redirects: dict[str, str] = field(default_factory=dict)
    data_components: list[dict[str, Any]] = field(default_factory=list)
    detection_strategies: list[dict[str, Any]] = field(default_factory=list)
    analytics: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AttackCatalog:
        return cls(**json.loads(text))

    def technique_ids(self) -> set[str]:
        return {technique["id"] for technique in self.techniques}

    def resolve(self, technique_id: str) -> str:
        """The current id for a technique id, following revocations."""
        seen = set()
        while technique_id in self.redirects and technique_id not in seen:
            seen.add(technique_id)
            technique_id = self.redirects[technique_id]
        return technique_id


def load_attack(path: str | Path) -> AttackCatalog:
    """Read a bundle into a catalogue; a file that is not a STIX bundle is a SourceError."""
    # Imported here: mitreattack-python takes a quarter of a second to import, and most
    # commands never read a bundle.
    import stix2.exceptions
    from mitreattack.stix20 import MitreAttackData

    try:
        return _catalog(MitreAttackData(src=_memory_store(Path(path))))
    except (stix2.exceptions.STIXError, ValueError) as error:
        raise SourceError(f"{path}: not a valid ATT&CK STIX bundle: {error}") from error


def _catalog(attack: MitreAttackData) -> AttackCatalog:
    collection = _collection(attack)
    techniques = attack.get_techniques()
    ids = {technique["id"]: _attack_id(technique) for technique in techniques}
    relationships = attack.get_objects_by_type("relationship")
    catalog = AttackCatalog(
        domain=collection.get("name", ""),
        version=collection.get("x_mitre_version", ""),
        techniques=[_technique(t) for t in techniques],
        tactics=_tactics(attack),
        redirects=_redirects(relationships, ids),
        data_components=[_data_component(c) for c in attack.get_datacomponents()],
        detection_strategies=_detection_strategies(attack, relationships, ids),
        analytics=[_analytic(a) for a in attack.get_analytics()],
    )
    logger.info("ATT&CK %s %s: %d techniques, %d tactics, %d revoked ids",
                catalog.domain, catalog.version, len(catalog.techniques),
                len(catalog.tactics), len(catalog.redirects))
    return catalog


def _memory_store(path: Path) -> stix2.MemoryStore:
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            bundle = json.load(handle)
    except FileNotFoundError as error:
        raise SourceError(f"{path}: no such ATT&CK bundle") from error
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"{path}: not a readable STIX bundle: {error}") from error
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        raise SourceError(f"{path}: not a STIX bundle (no top-level \"type\": \"bundle\")")
    if not any(o.get("type") == "attack-pattern" for o in bundle.get("objects", [])):
        raise SourceError(f"{path}: the STIX bundle holds no ATT&CK techniques")
    import stix2

    return stix2.MemoryStore(stix_data=bundle["objects"], allow_custom=True)


def _collection(attack: MitreAttackData) -> dict[str, Any]:
    collections = attack.get_objects_by_type("x-mitre-collection")
    return dict(collections[0]) if collections else {}


def _attack_id(obj: Any) -> str:
    for reference in obj.get("external_references", []):
        if reference.get("source_name") == "mitre-attack" and reference.get("external_id"):
            return str(reference["external_id"])
    return ""


def _url(obj: Any) -> str:
    for reference in obj.get("external_references", []):
        if reference.get("source_name") == "mitre-attack":
            return str(reference.get("url", ""))
    return ""


def _technique(technique: Any) -> dict[str, Any]:
    technique_id = _attack_id(technique)
    is_sub = bool(technique.get("x_mitre_is_subtechnique", False))
    return {
        "id": technique_id,
        "name": technique.get("name", ""),
        "tactics": [p["phase_name"] for p in technique.get("kill_chain_phases", [])
                    if p.get("kill_chain_name") == "mitre-attack"],
        "platforms": list(technique.get("x_mitre_platforms", [])),
        "is_subtechnique": is_sub,
        "parent": technique_id.split(".")[0] if is_sub else "",
        "deprecated": bool(technique.get("x_mitre_deprecated", False)),
        "revoked": bool(technique.get("revoked", False)),
        "url": _url(technique),
    }


def _tactics(attack: MitreAttackData) -> list[dict[str, Any]]:
    order = {ref: index for matrix in attack.get_matrices()
             for index, ref in enumerate(matrix.get("tactic_refs", []))}
    return [{
        "id": _attack_id(tactic),
        "shortname": tactic.get("x_mitre_shortname", ""),
        "name": tactic.get("name", ""),
        "matrix_order": order.get(tactic["id"], len(order)),
    } for tactic in attack.get_tactics(remove_revoked_deprecated=True)]


def _redirects(relationships: list[Any], ids: dict[str, str]) -> dict[str, str]:
    """Revoked technique ids to the ids that replace them."""
    return {ids[r["source_ref"]]: ids[r["target_ref"]] for r in relationships
            if r.get("relationship_type") == "revoked-by"
            and ids.get(r["source_ref"]) and ids.get(r["target_ref"])}


def _data_component(component: Any) -> dict[str, Any]:
    return {
        "id": _attack_id(component),
        "name": component.get("name", ""),
        "stix_id": component["id"],
        "deprecated": bool(component.get("x_mitre_deprecated", False)),
        "log_sources": [dict(s) for s in component.get("x_mitre_log_sources", [])],
    }


def _detection_strategies(attack: MitreAttackData, relationships: list[Any],
                          ids: dict[str, str]) -> list[dict[str, Any]]:
    detected: dict[str, list[str]] = {}
    for relationship in relationships:
        target = ids.get(relationship["target_ref"])
        if relationship.get("relationship_type") == "detects" and target and \
                relationship["source_ref"].startswith("x-mitre-detection-strategy--"):
            detected.setdefault(relationship["source_ref"], []).append(target)
    return [{
        "id": _attack_id(strategy),
        "name": strategy.get("name", ""),
        "stix_id": strategy["id"],
        "techniques": sorted(detected.get(strategy["id"], [])),
        "analytics": list(strategy.get("x_mitre_analytic_refs", [])),
    } for strategy in attack.get_detectionstrategies()]


def _analytic(analytic: Any) -> dict[str, Any]:
    return {
        "id": _attack_id(analytic),
        "name": analytic.get("name", ""),
        "stix_id": analytic["id"],
        "platforms": list(analytic.get("x_mitre_platforms", [])),
        "log_sources": [dict(s) for s in analytic.get("x_mitre_log_source_references", [])],
    }
