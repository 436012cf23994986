"""A small knowledge base with answers known by hand, for the golden tests of canned queries.

Five rules over the demo ATT&CK subset, with neutral field names and values so that the
answers depend on the queries alone:

| rule        | techniques          | platform | deprecated | rows                                 |
|-------------|---------------------|----------|------------|--------------------------------------|
| sigma:r1    | T1505.003           | windows  | no         | alpha ends_with x1; beta eq y1;      |
|             |                     |          |            | NOT gamma contains z1 (exclusion)    |
| elastic:r2  | T1505.003 T1505.004 | windows  | no         | alpha ends_with x1; delta in v1, v2  |
| sigma:r3    | T1505.004           | windows  | yes        | alpha ends_with x1                   |
| splunk:r4   | T1086 (revoked)     | linux    | no         | beta eq y1; NOT gamma contains z1    |
| sigma:r5    | T1505               | linux    | no         | epsilon eq w1 OR NOT alpha eq x9     |
"""

from __future__ import annotations

from kb.build import settle
from kb.demo import demo_attack_bundle
from kb.graph.backend import GraphTables
from kb.graph.tables import graph_tables
from kb.model import Not, Or, Pred, RuleRecord, and_
from kb.report import LoadReport
from loaders.attack import load_attack


def _rule(uid: str, techniques: tuple[str, ...], platform: str, event: str, condition,
          deprecated: bool = False) -> RuleRecord:
    vendor, native_id = uid.split(":")
    record = RuleRecord(vendor=vendor, native_id=native_id, title=f"Rule {native_id}",
                        path=f"{native_id}.yml", language=vendor, status="test",
                        deprecated=deprecated, severity="high", platforms=(platform,),
                        techniques=techniques, event_types=(event,), condition=condition,
                        text=f"title: Rule {native_id}\ncondition: <{native_id}>\n")
    return record.finish()


def golden_records() -> list[RuleRecord]:
    return [
        _rule("sigma:r1", ("T1505.003",), "windows", "sigma:windows/process_creation",
              and_(Pred("alpha", "ends_with", ("x1",)), Pred("beta", "eq", ("y1",)),
                   Not(Pred("gamma", "contains", ("z1",))))),
        _rule("elastic:r2", ("T1505.003", "T1505.004"), "windows",
              "elastic:event.category/process",
              and_(Pred("alpha", "ends_with", ("x1",)), Pred("delta", "in", ("v1", "v2")))),
        _rule("sigma:r3", ("T1505.004",), "windows", "sigma:windows/process_creation",
              Pred("alpha", "ends_with", ("x1",)), deprecated=True),
        _rule("splunk:r4", ("T1086",), "linux", "splunk:datamodel/Endpoint.Processes",
              and_(Pred("beta", "eq", ("y1",)), Not(Pred("gamma", "contains", ("z1",))))),
        _rule("sigma:r5", ("T1505",), "linux", "sigma:linux/process_creation",
              Or((Pred("epsilon", "eq", ("w1",)), Not(Pred("alpha", "eq", ("x9",)))))),
    ]


def golden_tables() -> GraphTables:
    catalog = load_attack(demo_attack_bundle())
    records = settle(golden_records(), catalog, LoadReport())
    return graph_tables(catalog, records, {"attack_version": catalog.version})


# --- the coverage extension (issue 9): more rules, techniques, ATT&CK analytics and FEEDS ------
#
# Added to the five rules above, for the coverage, gap, comparison and drill-down queries:
#
# | rule         | techniques | status       | event type                                       |
# |--------------|------------|--------------|--------------------------------------------------|
# | splunk:r6    | T1003.001  | experimental | splunk:data_source/Sysmon EventID 10             |
# | elastic:r7   | T1003.001  | development  | elastic:index/logs-windows.sysmon_operational-*  |
# | sentinel:r8  | T1505.003  | (none)       | (none: telemetry unknown)                        |
# | chronicle:r9 | T1558      | deprecated   | chronicle:udm/USER_LOGIN                         |
#
# r6: alpha ends_with x1, beta eq y1; r7: delta eq v1; r8: beta eq y1; r9: beta eq y1.
# Techniques added to the ATT&CK subset (credential-access): T1556 (a detection strategy with
# two analytics needing DC0067, which no event type feeds), T1557 (nothing), T1558.
# T1003.001 gets a strategy with one analytic needing DC0035. FEEDS, set here whatever the
# taxonomy says: sigma:windows/process_creation and elastic:event.category/process feed DC0032,
# splunk:data_source/Sysmon EventID 10 feeds DC0035.

COVERAGE_FEEDS = (
    ("sigma:windows/process_creation", "DC0032"),
    ("elastic:event.category/process", "DC0032"),
    ("splunk:data_source/Sysmon EventID 10", "DC0035"),
)


def _coverage_rule(uid: str, technique: str, status: str, events: tuple[str, ...], condition,
                   deprecated: bool = False) -> RuleRecord:
    vendor, native_id = uid.split(":")
    return RuleRecord(vendor=vendor, native_id=native_id, title=f"Rule {native_id}",
                      path=f"{native_id}.yml", language=vendor, status=status,
                      deprecated=deprecated, severity="medium", platforms=("windows",),
                      techniques=(technique,), event_types=events,
                      condition=condition).finish()


def coverage_records() -> list[RuleRecord]:
    """The golden rules and four more (see the table above)."""
    return [
        *golden_records(),
        _coverage_rule("splunk:r6", "T1003.001", "experimental",
                       ("splunk:data_source/Sysmon EventID 10",),
                       and_(Pred("alpha", "ends_with", ("x1",)), Pred("beta", "eq", ("y1",)))),
        _coverage_rule("elastic:r7", "T1003.001", "development",
                       ("elastic:index/logs-windows.sysmon_operational-*",),
                       Pred("delta", "eq", ("v1",))),
        _coverage_rule("sentinel:r8", "T1505.003", "", (), Pred("beta", "eq", ("y1",))),
        _coverage_rule("chronicle:r9", "T1558", "deprecated", ("chronicle:udm/USER_LOGIN",),
                       Pred("beta", "eq", ("y1",)), deprecated=True),
    ]


def _technique(technique_id: str, name: str, platforms: list[str]) -> dict:
    return {"id": technique_id, "name": name, "tactics": ["credential-access"],
            "platforms": platforms, "is_subtechnique": False, "parent": "", "deprecated": False,
            "revoked": False, "url": ""}


def _extend_catalog(catalog) -> None:
    catalog.techniques += [
        _technique("T1556", "Modify Authentication Process", ["Windows", "Linux"]),
        _technique("T1557", "Adversary-in-the-Middle", ["Windows"]),
        _technique("T1558", "Steal or Forge Kerberos Tickets", ["Windows"]),
    ]
    catalog.data_components += [
        {"id": "DC0035", "name": "Process Access", "stix_id": "dc-35", "deprecated": False,
         "log_sources": []},
        {"id": "DC0067", "name": "Logon Session Creation", "stix_id": "dc-67",
         "deprecated": False, "log_sources": []},
    ]
    catalog.analytics += [
        {"id": "AN9002", "name": "Analytic 9002", "stix_id": "an-9002", "platforms": ["Windows"],
         "log_sources": [{"x_mitre_data_component_ref": "dc-67", "name": "WinEventLog:Security",
                          "channel": "EventCode=4624"}]},
        {"id": "AN9003", "name": "Analytic 9003", "stix_id": "an-9003", "platforms": ["Linux"],
         "log_sources": [{"x_mitre_data_component_ref": "dc-67", "name": "auditd",
                          "channel": "USER_LOGIN"}]},
        {"id": "AN9004", "name": "Analytic 9004", "stix_id": "an-9004", "platforms": ["Windows"],
         "log_sources": [{"x_mitre_data_component_ref": "dc-35", "name": "WinEventLog:Sysmon",
                          "channel": "EventCode=10"}]},
    ]
    catalog.detection_strategies += [
        {"id": "DET9002", "name": "Demo: authentication changes", "stix_id": "det-9002",
         "techniques": ["T1556"], "analytics": ["an-9002", "an-9003"]},
        {"id": "DET9003", "name": "Demo: LSASS access", "stix_id": "det-9003",
         "techniques": ["T1003.001"], "analytics": ["an-9004"]},
    ]


def coverage_tables() -> GraphTables:
    """The golden graph with the coverage extension."""
    catalog = load_attack(demo_attack_bundle())
    _extend_catalog(catalog)
    records = settle(coverage_records(), catalog, LoadReport())
    tables = graph_tables(catalog, records,
                          {"attack_version": catalog.version, "attack_domain": catalog.domain})
    tables.rels["FEEDS"] = [{"_from": key, "_to": component}
                            for key, component in COVERAGE_FEEDS]
    return tables
