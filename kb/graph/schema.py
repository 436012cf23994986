"""The graph schema, described once: both backends and docs/schema.md read it.

Labels are PascalCase, relationship types UPPER_SNAKE, properties snake_case.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prop:
    name: str
    type: str  # STRING, INT64, DOUBLE, BOOLEAN or STRING[]
    doc: str = ""


@dataclass(frozen=True)
class NodeSpec:
    label: str
    key: str
    props: tuple[Prop, ...]
    doc: str = ""


@dataclass(frozen=True)
class RelSpec:
    type: str
    source: str
    target: str
    props: tuple[Prop, ...] = ()
    doc: str = ""


def _s(name: str, doc: str = "") -> Prop:
    return Prop(name, "STRING", doc)


def _b(name: str, doc: str = "") -> Prop:
    return Prop(name, "BOOLEAN", doc)


def _list(name: str, doc: str = "") -> Prop:
    return Prop(name, "STRING[]", doc)


def _int(name: str, doc: str = "") -> Prop:
    return Prop(name, "INT64", doc)


_PREDICATE_PROPS = (
    _s("op", "positive operator"),
    _b("negated", "under an odd number of NOTs or a negative operator"),
    _b("exclusion", "part of a top-level NOT filter"),
    _s("raw_field", "the field as the rule names it"),
)

NODES = (
    NodeSpec("Technique", "id", (
        _s("id", "ATT&CK id, e.g. T1505.003"), _s("name"), _list("tactics", "tactic shortnames"),
        _list("platforms"), _b("is_subtechnique"), _s("parent", "parent id, or empty"),
        _b("deprecated"), _b("revoked"),
        _s("replaced_by", "for a revoked technique, the id that replaces it, else empty"),
        _s("url"),
    ), "An ATT&CK technique or sub-technique."),
    NodeSpec("Tactic", "id", (
        _s("id", "e.g. TA0003"), _s("shortname", "e.g. persistence"), _s("name"),
        _int("matrix_order", "column in the Enterprise matrix"),
    ), "An ATT&CK tactic."),
    NodeSpec("Rule", "uid", (
        _s("uid", "<vendor>:<native id>"), _s("vendor"), _s("native_id"), _s("title"),
        _s("language"), _s("path", "path inside its source"),
        _s("source", "the source's name (KbInfo `source:<name>` says where it came from)"),
        _s("commit", "the source's git commit it was read at, or empty"),
        _s("status"), _b("deprecated"), _s("severity"), _list("platforms"),
        _s("domain", "endpoint, network, cloud, identity, application or other"),
        _s("parse_status", "full, partial, none or no_query"), _int("problem_count"),
        _s("properties", "vendor-specific extras as JSON"),
        _s("text", "the rule as written: its file, or its own part of a file of several"),
        _s("condition", "the condition tree as JSON (kb.model.tree_data), raw fields; "
                        "`null` when the rule has none"),
    ), "A detection rule of any vendor."),
    NodeSpec("Field", "name", (
        _s("name", "canonical field, or the raw name when unmapped"),
        _b("mapped", "true when name is a canonical field"),
        _list("aliases", "vendor:raw names seen for it"),
    ), "A field rules filter on."),
    NodeSpec("Value", "key", (
        _s("key", "field, then the folded value"), _s("field"), _s("value"),
    ), "A value rules compare a field with."),
    NodeSpec("EventType", "key", (
        _s("key", "<vendor>:<kind>/<name>"), _s("name"), _s("source", "vendor"),
        _s("category", "taxonomy category, e.g. process_creation; empty when unknown"),
        _s("category_name", "the category's name"),
        _s("telemetry", "the concrete telemetry, e.g. Sysmon EventID 1; may be empty"),
    ), "A kind of event a rule needs, placed in kb's event taxonomy."),
    NodeSpec("DataComponent", "id", (
        _s("id", "ATT&CK id, e.g. DC0032"), _s("name"), _s("stix_id"),
    ), "An ATT&CK data component."),
    NodeSpec("DetectionStrategy", "id", (
        _s("id", "ATT&CK id, e.g. DET0001"), _s("name"), _s("stix_id"),
    ), "An ATT&CK detection strategy."),
    NodeSpec("Analytic", "id", (
        _s("id", "ATT&CK id, e.g. AN0001"), _s("name"), _list("platforms"), _s("stix_id"),
    ), "An ATT&CK analytic."),
    NodeSpec("KbInfo", "key", (
        _s("key"), _s("value"),
    ), "Facts about the build: ATT&CK version, sources, build time."),
)

RELS = (
    RelSpec("DETECTS", "Rule", "Technique", doc="the rule is tagged with the technique"),
    RelSpec("SUBTECHNIQUE_OF", "Technique", "Technique"),
    RelSpec("IN_TACTIC", "Technique", "Tactic"),
    RelSpec("FILTERS", "Rule", "Field", _PREDICATE_PROPS, "one per predicate row"),
    RelSpec("USES", "Rule", "Value", (
        *_PREDICATE_PROPS, _s("raw_value"),
        _int("reach", "corpus reach: non-deprecated rules using this field, op and value "
                      "unnegated"),
    ), "an indicator: the op with its value"),
    RelSpec("OF_FIELD", "Value", "Field"),
    RelSpec("OBSERVES", "Rule", "EventType"),
    RelSpec("FEEDS", "EventType", "DataComponent",
            doc="the event type's taxonomy category feeds the data component"),
    RelSpec("STRATEGY_FOR", "DetectionStrategy", "Technique"),
    RelSpec("HAS_ANALYTIC", "DetectionStrategy", "Analytic"),
    RelSpec("NEEDS", "Analytic", "DataComponent", (_s("log_source", "name:channel"),),
            "a log source the analytic reads"),
)

NODE_BY_LABEL = {spec.label: spec for spec in NODES}
REL_BY_TYPE = {spec.type: spec for spec in RELS}
