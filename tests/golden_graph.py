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
                        techniques=techniques, event_types=(event,), condition=condition)
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
