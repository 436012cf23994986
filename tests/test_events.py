"""The event taxonomy: vendor event-type keys to categories, and FEEDS edges to ATT&CK."""

import pytest

from kb.events import EventClass, classify, selection_event_types, sigma_logsource
from kb.graph.tables import graph_tables
from kb.model import PredicateRow, RuleRecord
from loaders.attack import AttackCatalog


@pytest.mark.parametrize(("key", "category", "telemetry"), [
    ("sigma:windows/process_creation", "process_creation", ""),
    ("splunk:data_source/Sysmon EventID 1", "process_creation", "Sysmon EventID 1"),
    ("sentinel:table/SecurityEvent/4688", "process_creation", "Windows Security 4688"),
    ("elastic:index/logs-endpoint.events.process-*", "process_creation",
     "Elastic Defend process events"),
    ("sentinel:table/DeviceProcessEvents", "process_creation",
     "Microsoft Defender DeviceProcessEvents"),
    ("chronicle:udm/PROCESS_LAUNCH", "process_creation", "UDM PROCESS_LAUNCH"),
    ("splunk:datamodel/Endpoint.Processes", "process_creation", ""),
    ("sentinel:table/SecurityEvent/4624", "authentication",
     "Windows Security 4624, 4625, 4648, 4776"),
    ("panther:logtype/AWS.CloudTrail", "aws_cloudtrail", "AWS CloudTrail"),
    ("splunk:sourcetype/aws:cloudtrail", "aws_cloudtrail", "AWS CloudTrail sourcetypes"),
])
def test_classify_places_vendor_keys_in_categories(key, category, telemetry):
    event_class = classify(key)

    assert (event_class.category, event_class.telemetry) == (category, telemetry)


def test_classify_unknown_key_is_none():
    assert classify("nosuch:kind/thing") is None


def test_sigma_logsource_names_the_fields_a_telemetry_carries():
    assert sigma_logsource("splunk:data_source/Sysmon EventID 11") == "sigma:windows/file_event"
    assert sigma_logsource("sentinel:table/DeviceProcessEvents") == ""


def test_selection_event_types_take_positive_equalities_only():
    rows = [PredicateRow("sourcetype", "eq", "aws:cloudtrail", False, False),
            PredicateRow("sourcetype", "eq", "noise", True, True),
            PredicateRow("sourcetype", "contains", "x", False, False)]

    assert selection_event_types("splunk", rows) == ["splunk:sourcetype/aws:cloudtrail"]


def test_graph_tables_writes_event_categories_and_feeds():
    catalog = AttackCatalog(data_components=[
        {"id": "DC0032", "name": "Process Creation", "stix_id": "x-mitre-data-component--1"}])
    record = RuleRecord(vendor="sigma", native_id="r1", title="t", path="p", language="sigma",
                        event_types=("sigma:windows/process_creation", "sigma:nosuch"))

    tables = graph_tables(catalog, [record], {})

    assert tables.nodes["EventType"] == [
        {"key": "sigma:windows/process_creation", "name": "windows/process_creation",
         "source": "sigma", "category": "process_creation", "category_name": "Process creation",
         "telemetry": ""},
        {"key": "sigma:nosuch", "name": "nosuch", "source": "sigma", "category": "",
         "category_name": "", "telemetry": ""}]
    assert tables.rels["FEEDS"] == [{"_from": "sigma:windows/process_creation", "_to": "DC0032"}]
    assert EventClass("process_creation", "Process creation", "") == classify(
        "sigma:windows/process_creation")
