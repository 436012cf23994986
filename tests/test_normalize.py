"""Canonical fields in context, and indicator identity across vendors, on hand-written rows."""

import pytest

from kb.model import Pred, RuleRecord, and_
from kb.normalize import canonical_field, indicator, normalise, simple_regex


def _record(vendor, event_types, *preds):
    record = RuleRecord(vendor=vendor, native_id="x", title="x", path="x", language=vendor,
                        event_types=event_types, condition=and_(*preds))
    record.finish()
    normalise(record)
    return record


@pytest.mark.parametrize(("vendor", "field", "event_types", "canonical"), [
    ("sentinel", "FolderPath", ("sentinel:table/DeviceProcessEvents",), "process.executable"),
    ("sentinel", "FolderPath", ("sentinel:table/DeviceFileEvents",), "file.path"),
    ("sentinel", "FileName", ("sentinel:table/DeviceProcessEvents",), "process.name"),
    ("sentinel", "FileName", ("sentinel:table/DeviceFileEvents",), "file.name"),
    ("sigma", "Image", ("sigma:windows/process_creation",), "process.executable"),
    ("sigma", "Image", ("sigma:windows/file_event",), "process.executable"),
    ("sigma", "TargetFilename", ("sigma:windows/file_event",), "file.path"),
    ("sigma", "ImageLoaded", ("sigma:windows/image_load",), "dll.path"),
    ("sigma", "CommandLine", ("sigma:linux/process_creation",), "process.command_line"),
    ("elastic", "process.name.caseless", ("elastic:event.category/process",), "process.name"),
    ("splunk", "Processes.process_name", ("splunk:datamodel/Endpoint.Processes",),
     "process.name"),
    ("splunk", "Processes.process", ("splunk:datamodel/Endpoint.Processes",),
     "process.command_line"),
    ("chronicle", "target.process.file.full_path", ("chronicle:udm/PROCESS_LAUNCH",),
     "process.executable"),
])
def test_canonical_field_depends_on_context(vendor, field, event_types, canonical):
    assert canonical_field(vendor, field, event_types) == canonical


def test_canonical_field_unknown_is_empty():
    assert canonical_field("sigma", "NoSuchField", ("sigma:windows/process_creation",)) == ""


def test_indicator_cmd_exe_is_one_indicator_across_vendors():
    rows = [
        _record("sigma", ("sigma:windows/process_creation",),
                Pred("Image", "ends_with", ("\\cmd.exe",))).predicates[0],
        _record("elastic", ("elastic:event.category/process",),
                Pred("process.name", "eq", ("cmd.exe",))).predicates[0],
        _record("splunk", ("splunk:datamodel/Endpoint.Processes",),
                Pred("Processes.process_name", "eq", ("cmd.exe",))).predicates[0],
        _record("sentinel", ("sentinel:table/DeviceProcessEvents",),
                Pred("FileName", "eq", ("CMD.EXE",))).predicates[0],
        _record("chronicle", ("chronicle:udm/PROCESS_LAUNCH",),
                Pred("target.process.file.full_path", "regex_match",
                     ("\\\\cmd\\.exe$",))).predicates[0],
    ]

    assert {indicator(row) for row in rows} == {("process.name", "eq", "cmd.exe")}
    assert [row.value for row in rows] == [
        "\\cmd.exe", "cmd.exe", "cmd.exe", "CMD.EXE", "\\\\cmd\\.exe$"]


def test_indicator_keeps_a_partial_component_on_the_path_field():
    row = _record("sigma", ("sigma:windows/process_creation",),
                  Pred("Image", "ends_with", ("md.exe",))).predicates[0]

    assert indicator(row) == ("process.executable", "ends_with", "md.exe")


def test_indicator_folds_doubled_backslashes_on_path_fields():
    row = _record("sigma", ("sigma:windows/file_event",),
                  Pred("TargetFilename", "contains", ("\\\\Temp\\\\X",))).predicates[0]

    assert indicator(row) == ("file.path", "contains", "\\temp\\x")


def test_indicator_in_is_eq_and_unmapped_fields_stay_raw():
    row = _record("sigma", ("sigma:windows/process_creation",),
                  Pred("NoSuchField", "in", ("A", "b"))).predicates[0]

    assert row.canonical_field == ""
    assert indicator(row) == ("NoSuchField", "eq", "a")


def test_normalise_keeps_raw_field_and_value():
    record = _record("sigma", ("sigma:windows/process_creation",),
                     Pred("Image", "ends_with", ("\\cmd.exe",)))

    assert [r.as_dict() for r in record.predicates] == [{
        "field": "Image", "canonical_field": "process.executable", "op": "ends_with",
        "value": "\\cmd.exe", "negated": False, "exclusion": False}]


def test_normalise_never_maps_computed_columns():
    record = _record("splunk", ("splunk:datamodel/Endpoint.Processes",),
                     Pred("process_name", "eq", ("x",), computed=True))

    assert record.predicates[0].canonical_field == ""


def test_normalise_adds_event_types_named_by_selection_rows():
    record = _record("chronicle", (),
                     Pred("metadata.event_type", "eq", ("PROCESS_LAUNCH",)),
                     Pred("metadata.product_event_type", "in", ("1", "4688")))

    assert record.event_types == ("chronicle:udm/PROCESS_LAUNCH",
                                  "chronicle:product_event_type/1",
                                  "chronicle:product_event_type/4688")


@pytest.mark.parametrize(("pattern", "expected"), [
    ("\\\\cmd\\.exe$", ("ends_with", "\\cmd.exe")),
    ("(?i)^powershell\\.exe$", ("eq", "powershell.exe")),
    ("^C:\\\\Windows", ("starts_with", "C:\\Windows")),
    ("mimikatz", ("contains", "mimikatz")),
    ("\\d+\\.exe$", ("regex_match", "\\d+\\.exe$")),
    ("a|b", ("regex_match", "a|b")),
])
def test_simple_regex_spells_plain_comparisons(pattern, expected):
    assert simple_regex(pattern) == expected
