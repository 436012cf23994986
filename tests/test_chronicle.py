"""The YARA-L 2.0 loader: hand-written rules asserted row by row, two hand-labelled community
rules, and the whole pinned snapshot against floors."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import corpus_source

from kb.model import RuleRecord
from kb.sources import RuleFile, Source
from loaders import chronicle

Row = tuple[str, str, str, bool, bool]


def parse(text: str, path: str = "rules/community/test.yaral") -> RuleRecord:
    [record] = chronicle.parse_file(RuleFile(path, text), {})
    return record


def rows(record: RuleRecord) -> list[Row]:
    return [(p.field, p.op, p.value, p.negated, p.exclusion) for p in record.predicates]


def rule(events: str, meta: str = 'author = "kb"', extra: str = "condition:\n    $e") -> str:
    return f"rule test_rule {{\n  meta:\n    {meta}\n  events:\n{events}\n  {extra}\n}}\n"


# --- events --------------------------------------------------------------------------------


def test_events_field_paths_lose_the_event_variable() -> None:
    record = parse(rule('    $e.principal.process.command_line = "whoami /all"'))

    assert rows(record) == [("principal.process.command_line", "eq", "whoami /all", False, False)]
    assert record.parse_status == "full"


def test_events_lines_are_anded_and_or_merges_equalities() -> None:
    text = rule("""
    $e.metadata.event_type = "PROCESS_LAUNCH"
    ($e.target.process.file.full_path = "a.exe" or $e.target.process.file.full_path = "b.exe")
    $e.target.process.command_line != "x"
    """)

    assert rows(parse(text)) == [
        ("metadata.event_type", "eq", "PROCESS_LAUNCH", False, False),
        ("target.process.file.full_path", "in", "a.exe", False, False),
        ("target.process.file.full_path", "in", "b.exe", False, False),
        ("target.process.command_line", "eq", "x", True, True),
    ]


def test_events_regex_literal_stays_verbatim_even_when_anchored() -> None:
    text = rule(r"""
    $e.target.process.file.full_path = /^C:\\Windows\\cmd\.exe$/ nocase
    $e.principal.hostname != /^dc\d+/
    """)

    assert rows(parse(text)) == [
        ("target.process.file.full_path", "regex_match", r"^C:\\Windows\\cmd\.exe$", False, False),
        ("principal.hostname", "regex_match", r"^dc\d+", True, True),
    ]


def test_events_functions_give_their_operators_and_drop_case_wrappers() -> None:
    text = rule(r"""
    re.regex($e.target.process.command_line, `-enc\s`) nocase
    strings.contains(strings.to_lower($e.target.process.command_line), "c:\\temp\\")
    strings.starts_with(strings.to_upper($e.target.file.full_path), "C:\\USERS")
    strings.ends_with($e.target.file.full_path, ".ps1")
    net.ip_in_range_cidr($e.target.ip, "10.0.0.0/8")
    $e.network.sent_bytes > 10000
    """)

    assert rows(parse(text)) == [
        ("target.process.command_line", "regex_match", r"-enc\s", False, False),
        ("target.process.command_line", "contains", "c:\\temp\\", False, False),
        ("target.file.full_path", "starts_with", "C:\\USERS", False, False),
        ("target.file.full_path", "ends_with", ".ps1", False, False),
        ("target.ip", "cidr", "10.0.0.0/8", False, False),
        ("network.sent_bytes", "gt", "10000", False, False),
    ]


def test_events_not_block_is_one_exclusion_filter() -> None:
    text = rule("""
    $e.metadata.event_type = "PROCESS_LAUNCH"
    NOT (
      $e.principal.process.file.full_path = "C:\\\\Git\\\\sh.exe" AND
      re.regex($e.target.process.command_line, `--silent`)
    )
    not $e.target.user.userid = ""
    """)

    assert rows(parse(text)) == [
        ("metadata.event_type", "eq", "PROCESS_LAUNCH", False, False),
        ("principal.process.file.full_path", "eq", "C:\\Git\\sh.exe", True, True),
        ("target.process.command_line", "regex_match", "--silent", True, True),
        ("target.user.userid", "is_not_null", "", False, False),
    ]


def test_events_reference_list_is_an_in_row_with_the_token_as_written() -> None:
    text = rule("""
    $e.network.dns.questions.name in %suspicious_domains
    not $e.principal.ip in cidr %internal_ranges
    """)
    record = parse(text)

    assert rows(record) == [
        ("network.dns.questions.name", "in", "%suspicious_domains", False, False),
        ("principal.ip", "in", "%internal_ranges", True, True),
    ]
    assert record.properties["reference_lists"] == ["%suspicious_domains", "%internal_ranges"]


def test_events_placeholder_joins_give_no_row_and_placeholders_resolve() -> None:
    text = rule("""
    $e1.metadata.event_type = "PROCESS_LAUNCH"
    $e1.principal.hostname = $host
    $e2.metadata.event_type = "NETWORK_CONNECTION"
    $e2.principal.hostname = $host
    $e2.target.application = $service
    $e1.metadata.event_timestamp.seconds < $e2.metadata.event_timestamp.seconds
    $service in %bad_services
    """, extra="match:\n    $host over 5m\n  condition:\n    $e1 and $e2")
    record = parse(text)

    assert rows(record) == [
        ("metadata.event_type", "eq", "PROCESS_LAUNCH", False, False),
        ("metadata.event_type", "eq", "NETWORK_CONNECTION", False, False),
        ("target.application", "in", "%bad_services", False, False),
    ]
    assert record.event_types == ("chronicle:udm/PROCESS_LAUNCH",
                                  "chronicle:udm/NETWORK_CONNECTION")
    assert record.properties["event_variables"] == {
        "$e1": {"event_types": ["PROCESS_LAUNCH"], "fields": ["metadata.event_type"]},
        "$e2": {"event_types": ["NETWORK_CONNECTION"],
                "fields": ["metadata.event_type", "target.application"]},
    }
    assert record.properties["match"] == {"variables": ["$host"], "window": "5m"}


def test_events_log_type_and_entity_type_are_event_types_and_rows() -> None:
    text = rule("""
    $e.metadata.log_type = "GCP_CLOUDAUDIT"
    $ioc.graph.metadata.entity_type = "FILE"
    not $e.metadata.event_type = "GENERIC_EVENT"
    """)
    record = parse(text)

    assert record.event_types == ("chronicle:log_type/GCP_CLOUDAUDIT", "chronicle:entity/FILE")
    assert ("metadata.event_type", "eq", "GENERIC_EVENT", True, True) in rows(record)


def test_events_comments_are_ignored() -> None:
    text = rule("""
    // $e.principal.hostname = "commented-out"
    $e.target.url = "http://example.com/a//b" /* inline */
    /*
    $e.target.port = 4444
    */
    """)

    assert rows(parse(text)) == [("target.url", "eq", "http://example.com/a//b", False, False)]


def test_events_computed_values_keep_the_function_and_are_marked() -> None:
    text = rule("""
    re.replace($e.target.user.userid, `@.*$`, "") in %admins
    """)
    [row] = parse(text).predicates

    assert (row.field, row.op, row.value, row.computed) == (
        're.replace(target.user.userid, `@.*$`, "")', "in", "%admins", True)


def test_events_time_arithmetic_is_a_window_not_a_row() -> None:
    text = rule("""
    $e.metadata.event_type = "NETWORK_DNS"
    2592000 > timestamp.current_seconds() - $w.graph.entity.domain.creation_time.seconds
    """)
    record = parse(text)

    assert rows(record) == [("metadata.event_type", "eq", "NETWORK_DNS", False, False)]
    assert len(record.properties["time_windows"]) == 1
    assert record.parse_status == "full"


def test_events_unknown_function_is_unparsed() -> None:
    record = parse(rule('    $e.metadata.event_type = "X"\n    hash.fingerprint($e.target.file)'))

    assert record.parse_status == "partial"
    assert record.problems[0].message.startswith("unsupported function hash.fingerprint()")


def test_outcome_match_and_condition_give_no_rows() -> None:
    text = rule(
        '    $e.metadata.event_type = "USER_LOGIN"\n    $e.target.user.userid = $user',
        extra="""match:
    $user over 1h
  outcome:
    $risk_score = max(35 + if($e.security_result.severity = "HIGH", 30, 0))
    $hosts = array_distinct($e.principal.hostname)
  condition:
    #e > 5""")
    record = parse(text)

    assert rows(record) == [("metadata.event_type", "eq", "USER_LOGIN", False, False)]
    assert record.properties["outcome_variables"] == ["$risk_score", "$hosts"]
    assert record.properties["condition"] == "#e > 5"


# --- meta: techniques, names, tactics ------------------------------------------------------


def test_meta_technique_forms() -> None:
    meta = """technique = "T1505.003"
    //technique = "T1562.002"
    mitre = "t1059, Persistence"
    mitre_attack_technique = "Impair Defenses: Disable Cloud Logs"
    mitre_attack_url = "https://attack.mitre.org/techniques/T1562/008/"
    tactic = "ta0003"
    severity = "High"
    rule_name = "A Test Rule"
    platform = "Windows" """
    record = parse(rule('    $e.metadata.event_type = "X"', meta=meta))

    assert record.techniques == ("T1505.003", "T1059", "T1562.008")
    assert record.properties["technique_names"] == ["Impair Defenses: Disable Cloud Logs"]
    assert record.properties["tactics"] == ["Persistence", "TA0003"]
    assert (record.title, record.severity, record.platforms) == ("A Test Rule", "high",
                                                                  ("windows",))
    assert record.uid == "chronicle:test_rule"


def test_meta_technique_key_with_an_id_gives_no_name() -> None:
    record = parse(rule('    $e.metadata.event_type = "X"',
                        meta='mitre_attack_technique = "T1098.003"'))

    assert record.techniques == ("T1098.003",)
    assert "technique_names" not in record.properties


# --- files ---------------------------------------------------------------------------------


def test_parse_file_syntax_error_names_the_line() -> None:
    [record] = chronicle.parse_file(RuleFile("rules/bad.yaral", 'rule x {\n events:\n  $e.a = \n}'),
                                    {})

    assert record.parse_status == "none"
    assert record.problems[0].kind == "syntax"
    assert record.problems[0].line == 4


def test_parse_file_deprecated_path_marks_the_rule() -> None:
    record = parse(rule('    $e.metadata.event_type = "X"'), "rules/_deprecated/malware/x.yaral")

    assert record.deprecated
    assert record.status == "deprecated"


def test_load_context_gives_later_duplicates_their_path() -> None:
    text = rule('    $e.metadata.event_type = "X"')
    source = Source("mem", {"rules/community/a.yaral": text.encode(),
                            "rules/_deprecated/a.yaral": text.encode()})
    context = chronicle.load_context(source)

    uids = [r.uid for path in chronicle.rule_paths(source)
            for r in chronicle.parse_file(source.rule_file(path), context)]

    assert uids == ["chronicle:test_rule@rules/_deprecated/a.yaral", "chronicle:test_rule"]


# --- the pinned snapshot -------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapshot() -> list[RuleRecord]:
    source = corpus_source("chronicle")
    context = chronicle.load_context(source)
    return [record for path in chronicle.rule_paths(source)
            for record in chronicle.parse_file(source.rule_file(path), context)]


def _by_path(snapshot: list[RuleRecord], path: str) -> RuleRecord:
    return next(record for record in snapshot if record.path == path)


@pytest.mark.corpus
def test_snapshot_parse_status_floors(snapshot: list[RuleRecord]) -> None:
    community = [r for r in snapshot if not r.deprecated]
    statuses = Counter((r.deprecated, r.parse_status) for r in snapshot)

    assert len(snapshot) == 886
    assert len(community) == 348
    assert statuses[(False, "full")] >= 340
    assert statuses[(False, "full")] / len(community) >= 0.95
    assert statuses[(True, "full")] >= 525
    assert len({r.uid for r in snapshot}) == len(snapshot)


@pytest.mark.corpus
def test_snapshot_rows_events_and_techniques_floors(snapshot: list[RuleRecord]) -> None:
    community = [r for r in snapshot if not r.deprecated]
    t1505 = Counter(r.deprecated for r in snapshot
                    if any(t.startswith("T1505") for t in r.techniques))

    assert sum(len(r.predicates) for r in community) >= 2400
    assert sum(1 for r in community for p in r.predicates if p.exclusion) >= 170
    assert sum(1 for r in community if r.event_types) >= 245
    assert sum(1 for r in community if r.techniques) >= 255
    assert sum(1 for r in community if r.properties.get("technique_names")) >= 140
    assert sum(1 for r in community if r.properties.get("reference_lists")) >= 11
    assert t1505 == {False: 4, True: 1}


@pytest.mark.corpus
def test_snapshot_hand_labelled_curl_download(snapshot: list[RuleRecord]) -> None:
    record = _by_path(snapshot,
                      "rules/community/microsoft/windows/suspicious_curl_exe_download.yaral")
    command_line = "target.process.command_line"
    contains = ["%appdata%", "%public%", "%temp%", "%tmp%", "\\appdata\\", "\\desktop\\",
                "\\temp\\", "\\users\\public\\", "c:\\perflogs\\", "c:\\programdata\\",
                "c:\\windows\\temp\\"]

    assert rows(record) == [
        ("metadata.event_type", "eq", "PROCESS_LAUNCH", False, False),
        ("target.process.file.full_path", "regex_match", r"\\curl\.exe$", False, False),
        ("target.asset.software.description", "eq", "The curl executable", False, False),
        *[(command_line, "contains", value, False, False) for value in contains],
        (command_line, "regex_match", r"\.(dll|gif|jpeg|jpg|png|temp|tmp|txt|vbe|vbs)$",
         False, False),
        ("principal.process.file.full_path", "eq", "C:\\Program Files\\Git\\usr\\bin\\sh.exe",
         True, True),
        ("target.process.file.full_path", "eq",
         "C:\\Program Files\\Git\\mingw64\\bin\\curl.exe", True, True),
        (command_line, "contains", "--silent --show-error --output ", True, True),
        (command_line, "contains", "gfw-httpget-", True, True),
        (command_line, "contains", "appdata", True, True),
    ]
    assert record.uid == "chronicle:suspicious_curl_exe_download"
    assert record.techniques == ("T1105",)
    assert record.event_types == ("chronicle:udm/PROCESS_LAUNCH",)


@pytest.mark.corpus
def test_snapshot_hand_labelled_aws_call_outside_organization(
        snapshot: list[RuleRecord]) -> None:
    record = _by_path(
        snapshot, "rules/community/aws/cloudtrail/aws_api_call_outside_of_organization.yaral")

    assert rows(record) == [
        ("metadata.vendor_name", "eq", "AMAZON", False, False),
        ("metadata.product_name", "eq", "AWS CloudTrail", False, False),
        ("principal.user.group_identifiers", "in", "%aws_accounts", True, True),
        ("target.user.group_identifiers", "in", "%aws_accounts", True, True),
    ]
    assert record.properties["reference_lists"] == ["%aws_accounts"]
    assert record.techniques == ("T1078.004",)
    assert record.properties["technique_names"] == ["Valid Accounts: Cloud Accounts"]
    assert record.event_types == ()
