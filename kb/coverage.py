"""Coverage across the catalogue: gaps, telemetry, Navigator layers, vendor comparison and
drill-downs, all over the canned queries in `cypher/`.

Words used throughout (docs/coverage.md says the same at more length):

- A rule is *live* unless deprecated. Its *maturity* comes from its status word, which each
  vendor spells its own way (`STATUS_MATURITY`): Sigma stable/test, Elastic and Splunk
  production, and no word at all (Sentinel, Chronicle, most of Panther publish without one) are
  *mature*; Sigma/Splunk/Panther experimental, Elastic development, Splunk validation, Sigma
  unsupported, and any word not listed are *experimental*; a deprecated rule is *deprecated*.
- A rule *covers* the techniques it is tagged with; with roll-up (the default) a parent
  technique is also covered by its sub-techniques' rules, a sub-technique only by its own.
- Rule platforms are loader words (windows, aws, okta...); `RULE_PLATFORMS` maps them onto
  ATT&CK platforms. Under a platform filter a rule counts when it maps onto that platform or
  onto no ATT&CK platform at all (its platform is unknown, so it is not ruled out).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from kb import events
from kb.errors import SchemaError, UserError
from kb.graph.backend import Backend, Row
from kb.model import PredicateRow
from kb.normalize import indicator
from kb.queries import run_query

logger = logging.getLogger(__name__)

MATURE, EXPERIMENTAL, DEPRECATED = "mature", "experimental", "deprecated"

# Status words seen in the six snapshots (and the vendors' documented ones), lower-cased.
STATUS_MATURITY = {
    "": MATURE, "stable": MATURE, "test": MATURE, "production": MATURE,
    "experimental": EXPERIMENTAL, "development": EXPERIMENTAL, "validation": EXPERIMENTAL,
    "unsupported": EXPERIMENTAL,
    "deprecated": DEPRECATED,
}

# Loader platform words onto ATT&CK platform names (lower-cased).
RULE_PLATFORMS = {
    "windows": ("windows",), "linux": ("linux",), "macos": ("macos",), "esxi": ("esxi",),
    "aws": ("iaas",), "gcp": ("iaas",), "google cloud": ("iaas",),
    "azure": ("iaas", "identity provider"),
    "okta": ("identity provider",), "onelogin": ("identity provider",),
    "m365": ("office suite",), "google_workspace": ("office suite",),
    "google workspace": ("office suite",),
    "github": ("saas",), "bitbucket": ("saas",),
    "kubernetes": ("containers",),
    "cisco": ("network devices",), "fortigate": ("network devices",),
    "fortios": ("network devices",), "paloalto": ("network devices",),
    "huawei": ("network devices",), "juniper": ("network devices",),
}

GAP_KINDS = ("no_rule", "only_experimental", "one_vendor")


def maturity(status: str | None, deprecated: bool) -> str:
    """mature, experimental or deprecated, from a rule's status word and deprecated flag."""
    if deprecated:
        return DEPRECATED
    return STATUS_MATURITY.get((status or "").strip().lower(), EXPERIMENTAL)


def attack_platforms(rule_platforms: Iterable[str]) -> frozenset[str]:
    """The ATT&CK platforms (lower-case) a rule's platform words stand for."""
    return frozenset(p for word in rule_platforms for p in RULE_PLATFORMS.get(word.lower(), ()))


# --- the catalogue, read once per call ------------------------------------------------------


@dataclass(frozen=True)
class TechniqueInfo:
    id: str
    name: str
    tactics: tuple[str, ...]
    tactic_ids: tuple[str, ...]
    platforms: tuple[str, ...]
    is_subtechnique: bool
    parent: str
    analytics: int
    data_components: int


@dataclass(frozen=True)
class RuleInfo:
    uid: str
    vendor: str
    title: str
    status: str
    maturity: str
    platforms: tuple[str, ...]
    techniques: tuple[str, ...]
    event_types: tuple[str, ...]

    @property
    def live(self) -> bool:
        return self.maturity != DEPRECATED


@dataclass
class Catalogue:
    techniques: dict[str, TechniqueInfo]
    rules: list[RuleInfo]

    def vendors(self) -> list[str]:
        return sorted({rule.vendor for rule in self.rules})

    def covered_ids(self, rule: RuleInfo, roll_up: bool) -> set[str]:
        """The current techniques a rule covers: its own, and their parents under roll-up."""
        ids = {t for t in rule.techniques if t in self.techniques}
        if roll_up:
            ids |= {self.techniques[t].parent for t in ids if self.techniques[t].parent}
        return ids & set(self.techniques)


def load_catalogue(backend: Backend) -> Catalogue:
    techniques = {row["id"]: _technique(row) for row in run_query(backend, "coverage_techniques")}
    rules = [_rule(row) for row in run_query(backend, "coverage_rules")]
    logger.info("catalogue: %d techniques, %d rules", len(techniques), len(rules))
    return Catalogue(techniques, rules)


def _technique(row: Row) -> TechniqueInfo:
    return TechniqueInfo(
        id=row["id"], name=row["name"], tactics=tuple(row["tactics"] or ()),
        tactic_ids=tuple(sorted(row["tactic_ids"] or ())),
        platforms=tuple(row["platforms"] or ()), is_subtechnique=bool(row["is_subtechnique"]),
        parent=row["parent"] or "", analytics=row["analytics"],
        data_components=row["data_components"])


def _rule(row: Row) -> RuleInfo:
    return RuleInfo(
        uid=row["uid"], vendor=row["vendor"], title=row["title"] or "",
        status=row["status"] or "", maturity=maturity(row["status"], row["deprecated"]),
        platforms=tuple(row["platforms"] or ()), techniques=tuple(sorted(row["techniques"])),
        event_types=tuple(sorted(row["event_types"])))


def scoped_rules(catalogue: Catalogue, vendors: Sequence[str] = (),
                 platform: str = "") -> list[RuleInfo]:
    """The catalogue's rules of these vendors (all when none) that may run on the platform."""
    known = catalogue.vendors()
    unknown = [v for v in vendors if v not in known]
    if unknown:
        raise UserError(f"no rules of vendor {', '.join(unknown)} in the knowledge base "
                        f"(known: {', '.join(known)})")
    wanted = _platform(catalogue, platform)
    return [rule for rule in catalogue.rules
            if (not vendors or rule.vendor in vendors)
            and (not wanted or _runs_on(rule, wanted))]


def _platform(catalogue: Catalogue, platform: str) -> str:
    if not platform:
        return ""
    known = {p.lower() for t in catalogue.techniques.values() for p in t.platforms}
    if platform.lower() not in known:
        raise UserError(f"unknown ATT&CK platform {platform!r} (known: "
                        f"{', '.join(sorted(known))})")
    return platform.lower()


def _runs_on(rule: RuleInfo, platform: str) -> bool:
    mapped = attack_platforms(rule.platforms)
    return not mapped or platform in mapped


def _on_platform(technique: TechniqueInfo, platform: str) -> bool:
    return not platform or platform in {p.lower() for p in technique.platforms}


# --- gaps -----------------------------------------------------------------------------------


@dataclass
class Gap:
    """A technique whose coverage falls short, and what the graph knows about it."""

    id: str
    name: str
    kind: str
    tactics: list[str]
    platforms: list[str]
    is_subtechnique: bool
    rules: int
    live_rules: int
    mature_rules: int
    vendors: list[str]
    analytics: int
    data_components: int
    unobserved_components: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gap_sort_key(gap: Gap) -> tuple:
    """Most consequential first: no rule, then only experimental or deprecated rules, then one
    vendor's rules; within a kind, fewer mature then fewer live rules first, then techniques
    ATT&CK writes more analytics for (more ways and platforms to detect it) and that span more
    platforms, then by id."""
    return (GAP_KINDS.index(gap.kind), gap.mature_rules, gap.live_rules, -gap.analytics,
            -len(gap.platforms), gap.id)


def gaps(backend: Backend, tactics: Sequence[str] = (), platform: str = "",
         vendors: Sequence[str] = (), kinds: Sequence[str] = (), roll_up: bool = True,
         catalogue: Catalogue | None = None) -> list[Gap]:
    """Current techniques with no rule, only experimental or deprecated rules, or live rules of
    one vendor only (left out when the vendors considered are one), most consequential first."""
    catalogue = catalogue or load_catalogue(backend)
    bad_kinds = [k for k in kinds if k not in GAP_KINDS]
    if bad_kinds:
        raise UserError(f"unknown gap kind {', '.join(bad_kinds)} (known: {', '.join(GAP_KINDS)})")
    rules = scoped_rules(catalogue, vendors, platform)
    wanted_platform = _platform(catalogue, platform)
    wanted_tactics = _tactics(backend, tactics)
    several_vendors = len(vendors) != 1 and len({r.vendor for r in rules}) > 1
    by_technique = _rules_by_technique(catalogue, rules, roll_up)
    unobserved = _unobserved_counts(backend, vendors)
    found = []
    for technique in catalogue.techniques.values():
        if not _on_platform(technique, wanted_platform) or (
                wanted_tactics and not wanted_tactics & set(technique.tactics)):
            continue
        gap = _gap(technique, by_technique.get(technique.id, []), several_vendors)
        if gap and (not kinds or gap.kind in kinds):
            gap.unobserved_components = unobserved.get(technique.id, 0)
            found.append(gap)
    return sorted(found, key=gap_sort_key)


def _tactics(backend: Backend, tactics: Sequence[str]) -> set[str]:
    """Tactic shortnames for tactics given by shortname, name or id (TA0006), any case."""
    names = {}
    for row in run_query(backend, "coverage_tactics"):
        for name in (row["shortname"], row["name"], row["id"]):
            names[name.lower()] = row["shortname"]
    wanted = set()
    for tactic in tactics:
        if tactic.strip().lower() not in names:
            raise UserError(f"unknown tactic {tactic!r} (known: "
                            f"{', '.join(sorted(set(names.values())))})")
        wanted.add(names[tactic.strip().lower()])
    return wanted


def _rules_by_technique(catalogue: Catalogue, rules: Iterable[RuleInfo],
                        roll_up: bool) -> dict[str, list[RuleInfo]]:
    by_technique: dict[str, list[RuleInfo]] = defaultdict(list)
    for rule in rules:
        for technique in catalogue.covered_ids(rule, roll_up):
            by_technique[technique].append(rule)
    return by_technique


def _gap(technique: TechniqueInfo, rules: list[RuleInfo], several_vendors: bool) -> Gap | None:
    live = [r for r in rules if r.live]
    mature = [r for r in live if r.maturity == MATURE]
    vendors = sorted({r.vendor for r in live})
    if not rules:
        kind = "no_rule"
    elif not mature:
        kind = "only_experimental"
    elif several_vendors and len(vendors) == 1:
        kind = "one_vendor"
    else:
        return None
    return Gap(id=technique.id, name=technique.name, kind=kind, tactics=list(technique.tactics),
               platforms=list(technique.platforms), is_subtechnique=technique.is_subtechnique,
               rules=len(rules), live_rules=len(live), mature_rules=len(mature), vendors=vendors,
               analytics=technique.analytics, data_components=technique.data_components)


# --- log sources ATT&CK says a technique needs ---------------------------------------------


@dataclass
class LogSourceGap:
    """A technique with data components its ATT&CK analytics need and no rule observes."""

    id: str
    name: str
    needed: int
    unobserved: list[dict[str, Any]]

    @property
    def blind(self) -> bool:
        """No needed component is observed by any rule."""
        return len(self.unobserved) == self.needed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "blind": self.blind}


def log_source_gaps(backend: Backend, vendors: Sequence[str] = (),
                    blind_only: bool = True) -> tuple[list[LogSourceGap], bool]:
    """Techniques whose needed log sources no rule observes (with blind_only, those where no
    needed data component is observed at all), and whether the graph links any event type to
    a data component (FEEDS); without such links every component counts as unobserved."""
    every_vendor = run_query(backend, "log_source_coverage", unobserved_only=False)
    feeds = any(row["rules"] for row in every_vendor)
    observed: dict[tuple[str, str], int] = Counter()
    components: dict[tuple[str, str], Row] = {}
    for vendor in vendors or ("",):
        rows = run_query(backend, "log_source_coverage", vendor=vendor, unobserved_only=False) \
            if vendor else every_vendor
        for row in rows:
            key = (row["technique"], row["data_component"])
            components[key] = row
            observed[key] += row["rules"]
    found = _log_source_gaps(components, observed)
    return [g for g in found if g.blind or not blind_only], feeds


def _log_source_gaps(components: dict[tuple[str, str], Row],
                     observed: dict[tuple[str, str], int]) -> list[LogSourceGap]:
    by_technique: dict[str, LogSourceGap] = {}
    for (technique, component), row in sorted(components.items()):
        gap = by_technique.setdefault(technique, LogSourceGap(technique, row["name"], 0, []))
        gap.needed += 1
        if not observed[(technique, component)]:
            gap.unobserved.append({"data_component": component, "name": row["component"],
                                   "log_sources": sorted(row["log_sources"]),
                                   "analytics": row["analytics"]})
    return [gap for gap in by_technique.values() if gap.unobserved]


def _unobserved_counts(backend: Backend, vendors: Sequence[str]) -> dict[str, int]:
    found, _ = log_source_gaps(backend, vendors, blind_only=False)
    return {gap.id: len(gap.unobserved) for gap in found}


# --- what the catalogue detects with the telemetry a user has -------------------------------


@dataclass(frozen=True)
class Telemetry:
    """A concrete event source the event taxonomy names, under its category."""

    category: str
    name: str
    sigma: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.category})"


def telemetry_catalogue() -> list[Telemetry]:
    """Every telemetry of the event taxonomy (kb/data/event_taxonomy.yml), in file order."""
    return [Telemetry(entry.get("category", key), entry["name"], entry.get("sigma", ""))
            for key, category in events.taxonomy().items()
            for entry in category.get("telemetry") or []]


@dataclass
class Have:
    """The telemetry a user collects: event-type keys or patterns, whole categories, and named
    telemetry; `resolved` tells what each name given stood for."""

    patterns: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    telemetry: set[Telemetry] = field(default_factory=set)
    resolved: dict[str, list[str]] = field(default_factory=dict)

    def satisfies(self, key: str) -> bool:
        """Whether a rule observing `key` can run on this telemetry."""
        if any(fnmatchcase(key, pattern) for pattern in self.patterns):
            return True
        event_class = events.classify(key)
        if event_class is None:
            return False
        if event_class.category in self.categories:
            return True
        if event_class.telemetry:
            return any(t.category == event_class.category and t.name == event_class.telemetry
                       for t in self.telemetry)
        return any(t.category == event_class.category and _compatible(key, t)
                   for t in self.telemetry)


def _compatible(key: str, telemetry: Telemetry) -> bool:
    """A category-wide key (`sigma:linux/process_creation`) accepts a category's telemetry
    unless both name a Sigma product and the products differ (Sysmon for Windows does not feed
    Sigma's linux rules)."""
    if not key.startswith("sigma:") or not telemetry.sigma:
        return True
    return _sigma_product(key) in ("", _sigma_product(telemetry.sigma))


def _sigma_product(key: str) -> str:
    name = key.partition(":")[2]
    return name.split("/")[0] if "/" in name else ""


def resolve_have(names: Iterable[str]) -> Have:
    """Read what a user collects. Each name is, tried in this order: an event-type key or an
    fnmatch pattern over keys (it has a colon; a plain key the taxonomy files under a telemetry
    also brings that telemetry, as other vendors name it), a taxonomy category
    (`process_creation`), a telemetry name (`Sysmon EventID 1`, any case), or a piece of
    telemetry names (`sysmon`: every telemetry whose name holds the word)."""
    have = Have()
    catalogue = telemetry_catalogue()
    categories = set(events.taxonomy())
    for raw in names:
        name = raw.strip()
        if not name or name.startswith("#"):
            continue
        have.resolved[name] = _resolve_one(have, name, catalogue, categories)
    if not have.resolved:
        raise UserError("no telemetry named: give event types, categories or telemetry names")
    return have


def _resolve_one(have: Have, name: str, catalogue: list[Telemetry],
                 categories: set[str]) -> list[str]:
    if ":" in name:
        have.patterns.add(name)
        event_class = None if any(c in name for c in "*?[") else events.classify(name)
        named = [t for t in catalogue if event_class and event_class.telemetry
                 and (t.category, t.name) == (event_class.category, event_class.telemetry)]
        have.telemetry.update(named)
        return [name, *(t.label for t in named)]
    if name.lower() in categories:
        have.categories.add(name.lower())
        return [f"category {name.lower()}"]
    named = [t for t in catalogue if t.name.casefold() == name.casefold()] or [
        t for t in catalogue if name.casefold() in t.name.casefold()]
    if not named:
        raise UserError(f"{name!r} is no event type, taxonomy category or telemetry name "
                        f"(categories: {', '.join(sorted(categories))})")
    have.telemetry.update(named)
    return [t.label for t in named]


def read_have_file(path: Path) -> list[str]:
    """Names from a file: one a line, blank lines and `#` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot read the telemetry list: {error.strerror}") from None
    return [line.split("#")[0].strip() for line in text.splitlines()
            if line.split("#")[0].strip()]


@dataclass
class TelemetryCoverage:
    """What the catalogue detects with some telemetry, and what one more source would add."""

    have: dict[str, list[str]]
    rules_considered: int
    rules_kept: int
    rules_unknown: int
    techniques: list[dict[str, Any]]
    techniques_lost: list[dict[str, Any]]
    rules_out: list[dict[str, Any]]
    best_additions: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def coverage_with(backend: Backend, names: Iterable[str], vendors: Sequence[str] = (),
                  roll_up: bool = True, suggestions: int = 5,
                  catalogue: Catalogue | None = None) -> TelemetryCoverage:
    """Which techniques the catalogue's live rules detect with only the telemetry named, which
    rules fall out (and which techniques they alone covered), and which one more event source
    would add the most techniques.

    A rule runs when the telemetry satisfies any one of its event types (a rule's event types
    are mostly alternatives: index patterns, data sources, log types). Rules that name no event
    type are counted apart, as unknown, and neither kept nor dropped."""
    catalogue = catalogue or load_catalogue(backend)
    have = resolve_have(names)
    rules = [r for r in scoped_rules(catalogue, vendors) if r.live]
    known = [r for r in rules if r.event_types]
    keys = {key for rule in known for key in rule.event_types}
    satisfied = {key for key in keys if have.satisfies(key)}
    kept = [r for r in known if satisfied.intersection(r.event_types)]
    out = [r for r in known if not satisfied.intersection(r.event_types)]
    detected = _technique_counts(catalogue, kept, roll_up)
    covered = _technique_counts(catalogue, known, roll_up)
    return TelemetryCoverage(
        have=have.resolved, rules_considered=len(known), rules_kept=len(kept),
        rules_unknown=len(rules) - len(known),
        techniques=_technique_rows(catalogue, detected),
        techniques_lost=_technique_rows(catalogue, {t: n for t, n in covered.items()
                                                     if t not in detected}),
        rules_out=[{"uid": r.uid, "vendor": r.vendor, "title": r.title,
                    "event_types": list(r.event_types)} for r in out],
        best_additions=_best_additions(catalogue, out, set(detected), roll_up)[:suggestions])


def _technique_counts(catalogue: Catalogue, rules: Iterable[RuleInfo],
                      roll_up: bool) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for rule in rules:
        counts.update(catalogue.covered_ids(rule, roll_up))
    return dict(counts)


def _technique_rows(catalogue: Catalogue, counts: dict[str, int]) -> list[dict[str, Any]]:
    return [{"id": t, "name": catalogue.techniques[t].name, "rules": counts[t]}
            for t in sorted(counts)]


def _best_additions(catalogue: Catalogue, out: list[RuleInfo], detected: set[str],
                    roll_up: bool) -> list[dict[str, Any]]:
    telemetry = telemetry_catalogue()
    keys = {key for rule in out for key in rule.event_types}
    sources_of = {key: _sources_for(key, telemetry) for key in keys}
    gained: dict[str, set[str]] = defaultdict(set)
    enabled: Counter[str] = Counter()
    for rule in out:
        sources = set().union(*(sources_of[key] for key in rule.event_types))
        for source in sources:
            gained[source] |= catalogue.covered_ids(rule, roll_up) - detected
            enabled[source] += 1
    ranked = sorted(gained, key=lambda s: (-len(gained[s]), -enabled[s], s))
    return [{"source": s, "techniques_gained": len(gained[s]), "rules_gained": enabled[s],
             "techniques": sorted(gained[s])} for s in ranked if gained[s]]


def _sources_for(key: str, telemetry: list[Telemetry]) -> set[str]:
    """The one-source additions that would satisfy an event-type key: its telemetry, any
    compatible telemetry of its category for a category-wide key, else the key itself."""
    event_class = events.classify(key)
    if event_class is None:
        return {key}
    if event_class.telemetry:
        return {Telemetry(event_class.category, event_class.telemetry).label}
    fitting = {t.label for t in telemetry
               if t.category == event_class.category and _compatible(key, t)}
    return fitting or {key}


# --- ATT&CK Navigator layer -----------------------------------------------------------------

NAVIGATOR_LAYER_FORMAT = "4.5"
SCORES = ("vendors", "rules")
_DOMAINS = (("enterprise", "enterprise-attack"), ("mobile", "mobile-attack"),
            ("ics", "ics-attack"))
_GRADIENT = ["#ffffff", "#66b1ff", "#0d47a1"]


def navigator_layer(backend: Backend, vendors: Sequence[str] = (), platform: str = "",
                    score: str = "vendors", catalogue: Catalogue | None = None) -> dict[str, Any]:
    """An ATT&CK Navigator layer (format 4.5) built with mitreattack-python's layer classes:
    each technique with live rules scored by its vendors (or rules), with a comment and
    metadata giving rules per vendor. Techniques are scored on their own rules; the layer asks
    Navigator to show a parent's aggregate (max) over its sub-techniques."""
    from mitreattack.navlayers import Layer, Layout, Metadata, Versions

    if score not in SCORES:
        raise UserError(f"unknown score {score!r} (known: {', '.join(SCORES)})")
    catalogue = catalogue or load_catalogue(backend)
    info = {row["key"]: row["value"] for row in run_query(backend, "kb_info")}
    rules = [r for r in scoped_rules(catalogue, vendors, platform) if r.live]
    by_technique = _rules_by_technique(catalogue, rules, roll_up=False)
    techniques = [_layer_technique(t, by_technique[t], score) for t in sorted(by_technique)]
    layer = Layer(name=_layer_name(vendors, platform, score), domain=navigator_domain(info))
    body = layer.layer
    body.description = _layer_description(info, rules, score)
    body.versions = Versions(layer=NAVIGATOR_LAYER_FORMAT, attack=_major(info))
    body.techniques = techniques
    # mitreattack-python's Gradient needs at least one score step per colour step.
    body.gradient = {"colors": _GRADIENT, "minValue": 0,
                     "maxValue": max([len(_GRADIENT) - 1, *(t["score"] for t in techniques)])}
    layout = Layout()
    layout.showAggregateScores = True
    layout.aggregateFunction = "max"
    body.layout = layout
    if platform:
        body.filters = {"platforms": _platform_names(catalogue, platform)}
    body.metadata = [Metadata(key, info[key]) for key in ("attack_version", "built_at")
                     if info.get(key)]
    return layer.to_dict()


def navigator_domain(info: dict[str, str]) -> str:
    """The Navigator domain of the bundle the graph was built from (KbInfo attack_domain)."""
    name = info.get("attack_domain", "").lower()
    for word, domain in _DOMAINS:
        if word in name:
            return domain
    raise SchemaError(f"no Navigator domain for the ATT&CK bundle {name or '(unnamed)'!r}")


def _major(info: dict[str, str]) -> str:
    """Navigator names ATT&CK versions by their major number (18 for 18.1)."""
    return info.get("attack_version", "").split(".")[0]


def _platform_names(catalogue: Catalogue, platform: str) -> list[str]:
    return sorted({p for t in catalogue.techniques.values() for p in t.platforms
                   if p.lower() == platform.lower()})


def _layer_name(vendors: Sequence[str], platform: str, score: str) -> str:
    scope = ", ".join(vendors) if vendors else "all vendors"
    return f"kb rule coverage: {scope}" + (f", {platform}" if platform else "") + f" ({score})"


def _layer_description(info: dict[str, str], rules: list[RuleInfo], score: str) -> str:
    vendors = ", ".join(sorted({r.vendor for r in rules}))
    return (f"Live (non-deprecated) rules per technique from {vendors}, scored by {score}; "
            f"ATT&CK {info.get('attack_version', '?')}, built {info.get('built_at', '?')}.")


def _layer_technique(technique: str, rules: list[RuleInfo], score: str) -> dict[str, Any]:
    per_vendor = Counter(r.vendor for r in rules)
    experimental = sum(1 for r in rules if r.maturity == EXPERIMENTAL)
    vendors = ", ".join(f"{v} {n}" for v, n in sorted(per_vendor.items()))
    comment = f"{len(rules)} rules from {len(per_vendor)} vendors: {vendors}"
    if experimental:
        comment += f"; {experimental} experimental"
    return {"techniqueID": technique, "enabled": True, "showSubtechniques": False,
            "score": len(per_vendor) if score == "vendors" else len(rules), "comment": comment,
            "metadata": [{"name": "rules", "value": str(len(rules))},
                         *({"name": v, "value": str(n)} for v, n in sorted(per_vendor.items()))]}


def write_layer(layer: dict[str, Any], path: Path) -> int:
    """Write a layer as UTF-8 JSON, load it back with mitreattack-python, and return how many
    techniques it holds; a layer that does not load back is a SchemaError."""
    path.write_text(json.dumps(layer, indent=2, ensure_ascii=False), encoding="utf-8")
    return check_layer(path)


def check_layer(path: Path) -> int:
    """Load a layer file with mitreattack-python's Layer; the library reports problems by
    printing, so anything it prints is a failure. Returns the technique count."""
    from mitreattack.navlayers import Layer

    text = path.read_text(encoding="utf-8")
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        layer = Layer()
        layer.from_str(text)
        loaded = layer.to_dict()
    if said.getvalue().strip() or not isinstance(loaded, dict):
        raise SchemaError(f"{path}: not a loadable Navigator layer: "
                          f"{said.getvalue().strip() or 'no layer'}")
    return len(loaded.get("techniques", []))


# --- comparing two vendors -------------------------------------------------------------------


@dataclass
class Comparison:
    """Techniques one vendor covers and the other does not, and on shared techniques the
    indicators each uses that the other lacks (top `limit` per technique, with totals)."""

    vendor: str
    other: str
    only_vendor: list[dict[str, Any]]
    only_other: list[dict[str, Any]]
    shared: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(backend: Backend, vendor: str, other: str, limit: int = 5,
            catalogue: Catalogue | None = None) -> Comparison:
    """Compare two vendors' live rules technique by technique (as tagged, no roll-up)."""
    if vendor == other:
        raise UserError("compare needs two different vendors")
    catalogue = catalogue or load_catalogue(backend)
    rules = [r for r in scoped_rules(catalogue, (vendor, other)) if r.live]
    counts = {v: _technique_counts(catalogue, [r for r in rules if r.vendor == v], False)
              for v in (vendor, other)}
    lacking = {v: _lacking(backend, v, w) for v, w in ((vendor, other), (other, vendor))}
    shared = sorted(set(counts[vendor]) & set(counts[other]))
    return Comparison(
        vendor=vendor, other=other,
        only_vendor=_technique_rows(catalogue, {t: n for t, n in counts[vendor].items()
                                                if t not in counts[other]}),
        only_other=_technique_rows(catalogue, {t: n for t, n in counts[other].items()
                                               if t not in counts[vendor]}),
        shared=[_shared(catalogue, t, counts, lacking, vendor, other, limit) for t in shared])


def _lacking(backend: Backend, vendor: str, other: str) -> dict[str, list[Row]]:
    by_technique: dict[str, list[Row]] = defaultdict(list)
    for row in run_query(backend, "compare_indicators", vendor=vendor, other=other):
        by_technique[row["technique"]].append(
            {k: row[k] for k in ("field", "op", "value", "rules")})
    return by_technique


def _shared(catalogue: Catalogue, technique: str, counts: dict[str, dict[str, int]],
            lacking: dict[str, dict[str, list[Row]]], vendor: str, other: str,
            limit: int) -> dict[str, Any]:
    mine, theirs = lacking[vendor].get(technique, []), lacking[other].get(technique, [])
    return {"id": technique, "name": catalogue.techniques[technique].name,
            "rules": {vendor: counts[vendor][technique], other: counts[other][technique]},
            "only_in": {vendor: len(mine), other: len(theirs)},
            "samples": {vendor: mine[:limit], other: theirs[:limit]}}


# --- drill-downs -----------------------------------------------------------------------------


@dataclass
class Drill:
    """The rules behind a field, an indicator or an event type, and their techniques."""

    subject: dict[str, Any]
    rules: list[Row]
    techniques: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def drill_field(backend: Backend, name: str, include_deprecated: bool = False) -> Drill:
    rows = run_query(backend, "field_drilldown", field=name,
                     include_deprecated=include_deprecated)
    return _drill(backend, {"field": name}, rows)


def drill_indicator(backend: Backend, name: str, op: str, value: str,
                    include_deprecated: bool = False) -> Drill:
    """Rules using an indicator, given as a rule writes it or folded (as indicator lists show
    it): the folded form is tried first, then the form given."""
    folded = indicator(PredicateRow(name, op, value, False, False)) if op else (name, "", value)
    tries = dict.fromkeys([folded, (name, "eq" if op == "in" else op, value)])
    for field_name, folded_op, folded_value in tries:
        rows = run_query(backend, "indicator_drilldown", field=field_name, op=folded_op,
                         value=folded_value, include_deprecated=include_deprecated)
        if rows:
            break
    subject = {"field": field_name, "op": folded_op, "value": folded_value}
    return _drill(backend, subject, rows)


def drill_event_type(backend: Backend, key: str, include_deprecated: bool = False) -> Drill:
    rows = run_query(backend, "event_type_drilldown", event_type=key,
                     include_deprecated=include_deprecated)
    event_class = events.classify(key)
    subject = {"event_type": key, "category": event_class.category if event_class else "",
               "telemetry": event_class.telemetry if event_class else ""}
    return _drill(backend, subject, rows)


def _drill(backend: Backend, subject: dict[str, Any], rows: list[Row]) -> Drill:
    for row in rows:
        for key in ("techniques", "ops", "raw_fields", "raw_values"):
            if key in row:
                row[key] = sorted(row[key])
    names = {row["id"]: row["name"] for row in run_query(backend, "coverage_techniques")}
    per_technique: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        for technique in row["techniques"]:
            per_technique[technique][row["vendor"]] += 1
    techniques = [{"id": t, "name": names.get(t, ""), "rules": sum(c.values()),
                   "vendors": dict(sorted(c.items()))}
                  for t, c in sorted(per_technique.items(), key=lambda i: (-sum(i[1].values()),
                                                                          i[0]))]
    return Drill(subject, rows, techniques)


def rule_neighbours(backend: Backend, uid: str, limit: int = 10,
                    include_deprecated: bool = False) -> list[Row]:
    """The rules sharing most indicators with a rule, with a Jaccard similarity beside the
    shared count (shared over the indicators either rule uses)."""
    if not run_query(backend, "rule", uid=uid):
        raise UserError(f"no rule {uid!r} in the knowledge base")
    own = len({(p["field"], p["op"], p["value"], p["negated"])
               for p in run_query(backend, "rule_predicates", uid=uid)})
    rows = run_query(backend, "rule_neighbours", uid=uid, limit=limit,
                     include_deprecated=include_deprecated)
    for row in rows:
        union = own + row["indicators"] - row["shared"]
        row["similarity"] = round(row["shared"] / union, 3) if union > 0 else 0.0
    return rows
