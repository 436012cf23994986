"""KQL to condition trees and predicate rows: one small query per operator and construct."""

from __future__ import annotations

import pytest

from kb.model import And, Not, Or, Pred, Unparsed, flatten
from loaders.sentinel_kusto import parse_kusto, unquote


def rows(query: str) -> list[tuple[str, str, str, bool, bool]]:
    """(field, op, value, negated, exclusion) of each predicate row."""
    result = parse_kusto(query)
    return [(r.field, r.op, r.value, r.negated, r.exclusion) for r in flatten(result.tree)]


@pytest.mark.parametrize(("where", "expected"), [
    ('A == "x"', [("A", "eq", "x", False, False)]),
    ('A != "x"', [("A", "eq", "x", True, True)]),
    ('A =~ "x"', [("A", "eq", "x", False, False)]),
    ('A !~ "x"', [("A", "eq", "x", True, True)]),
    ('A <> "x"', [("A", "eq", "x", True, True)]),
    ('A in ("x", "y")', [("A", "in", "x", False, False), ("A", "in", "y", False, False)]),
    ('A in ("x")', [("A", "eq", "x", False, False)]),
    ('A !in ("x", "y")', [("A", "in", "x", True, True), ("A", "in", "y", True, True)]),
    ('A in~ ("x", "y")', [("A", "in", "x", False, False), ("A", "in", "y", False, False)]),
    ('A !in~ ("x", "y")', [("A", "in", "x", True, True), ("A", "in", "y", True, True)]),
    ('A has "x"', [("A", "match", "x", False, False)]),
    ('A !has "x"', [("A", "match", "x", True, True)]),
    ('A has_cs "X"', [("A", "match", "X", False, False)]),
    ('A !has_cs "X"', [("A", "match", "X", True, True)]),
    ('A has_any ("x", "y")', [("A", "match", "x", False, False),
                              ("A", "match", "y", False, False)]),
    ('A has_all ("x", "y")', [("A", "match", "x", False, False),
                              ("A", "match", "y", False, False)]),
    ('A contains "x"', [("A", "contains", "x", False, False)]),
    ('A !contains "x"', [("A", "contains", "x", True, True)]),
    ('A contains_cs "x"', [("A", "contains", "x", False, False)]),
    ('A startswith "x"', [("A", "starts_with", "x", False, False)]),
    ('A !startswith "x"', [("A", "starts_with", "x", True, True)]),
    ('A endswith "x"', [("A", "ends_with", "x", False, False)]),
    ('A !endswith "x"', [("A", "ends_with", "x", True, True)]),
    ('A hasprefix "x"', [("A", "starts_with", "x", False, False)]),
    ('A hassuffix "x"', [("A", "ends_with", "x", False, False)]),
    ('A matches regex "^a\\\\d+$"', [("A", "regex_match", "^a\\d+$", False, False)]),
    ('A matches regex @"^a\\d+$"', [("A", "regex_match", "^a\\d+$", False, False)]),
    ("A between (10 .. 20)", [("A", "gte", "10", False, False), ("A", "lte", "20", False, False)]),
    ("A !between (10 .. 20)", [("A", "gte", "10", True, True), ("A", "lte", "20", True, True)]),
    ("A > 5 and B >= 6 and C < 7 and D <= 8", [
        ("A", "gt", "5", False, False), ("B", "gte", "6", False, False),
        ("C", "lt", "7", False, False), ("D", "lte", "8", False, False)]),
    ("isnotempty(A)", [("A", "is_not_null", "", False, False)]),
    ("isnotnull(A)", [("A", "is_not_null", "", False, False)]),
    ("isempty(A)", [("A", "is_not_null", "", True, True)]),
    ("isnull(A)", [("A", "is_not_null", "", True, True)]),
    ('A == "x" or B == "y"', [("A", "eq", "x", False, False), ("B", "eq", "y", False, False)]),
    ('A != "x" or B == "y"', [("A", "eq", "x", True, False), ("B", "eq", "y", False, False)]),
])
def test_operator_rows(where: str, expected: list) -> None:
    assert rows(f"T | where {where}") == expected


def test_not_nested_is_one_exclusion_filter() -> None:
    query = 'T | where A == "a" and not(B has "b" or not(C in ("c1", "c2")))'

    result = rows(query)

    assert result == [
        ("A", "eq", "a", False, False),
        ("B", "match", "b", True, True),
        ("C", "in", "c1", False, True),
        ("C", "in", "c2", False, True),
    ]


def test_not_tree_shape() -> None:
    tree = parse_kusto('T | where not(A has "x" and B == 1)').tree

    assert tree == Not(And((Pred("A", "match", ("x",)), Pred("B", "eq", ("1",)))))


def test_pipeline_stages_are_ands_for_exclusions() -> None:
    query = 'T | where A == "x" or B == "y" | where C !endswith ".exe" | where not(D == "z")'

    assert rows(query) == [
        ("A", "eq", "x", False, False), ("B", "eq", "y", False, False),
        ("C", "ends_with", ".exe", True, True), ("D", "eq", "z", True, True),
    ]


def test_strings_quoted_and_verbatim() -> None:
    query = (r'T | where A == "C:\\Windows\\x.exe" and B == ' + r"'it\'s'"
             + r' and C == @"C:\Temp\ ""q""" | where D has @' + r"'a''b'"
             + r' and E == h"secret" and F == "tab\there"')

    assert rows(query) == [
        ("A", "eq", "C:\\Windows\\x.exe", False, False),
        ("B", "eq", "it's", False, False),
        ("C", "eq", 'C:\\Temp\\ "q"', False, False),
        ("D", "match", "a'b", False, False),
        ("E", "eq", "secret", False, False),
        ("F", "eq", "tab\there", False, False),
    ]


def test_unquote_verbatim_keeps_backslashes() -> None:
    assert unquote(r'@"\\server\share"') == r"\\server\share"
    assert unquote(r'"\\\\server\\share"') == r"\\server\share"


def test_comments_and_pipes_inside_strings_are_not_structure() -> None:
    query = ('T // a comment | where X == "no"\n'
             '| where A == "a|b; c" // trailing\n| where B == "//x"')

    assert rows(query) == [("A", "eq", "a|b; c", False, False), ("B", "eq", "//x", False, False)]


def test_let_scalars_and_lists_are_substituted() -> None:
    query = """let procs = dynamic(["a.exe", "b.exe"]);
let name = "x";
let threshold = 5;
let window = 1d;
T | where TimeGenerated > ago(window)
| where Proc in~ (procs) and Name == name and Count > threshold and Tags has_any (procs)"""

    assert rows(query) == [
        ("Proc", "in", "a.exe", False, False), ("Proc", "in", "b.exe", False, False),
        ("Name", "eq", "x", False, False), ("Count", "gt", "5", False, False),
        ("Tags", "match", "a.exe", False, False), ("Tags", "match", "b.exe", False, False),
    ]


def test_let_list_with_pack_array_and_excluded() -> None:
    query = 'let allow = pack_array("svc1", "svc2");\nT | where Account !in (allow)'

    assert rows(query) == [("Account", "in", "svc1", True, True),
                           ("Account", "in", "svc2", True, True)]


def test_tabular_let_counts_only_where_used() -> None:
    query = """let unused = Other | where Z == "z";
let base = SecurityEvent | where EventID == 4624;
base | where Account != "SYSTEM" """

    result = parse_kusto(query)

    assert [(r.field, r.op, r.value, r.negated) for r in flatten(result.tree)] == [
        ("EventID", "eq", "4624", False), ("Account", "eq", "SYSTEM", True)]
    assert result.event_types == ("sentinel:table/SecurityEvent",
                                  "sentinel:table/SecurityEvent/4624")


def test_in_tabular_subquery_ands_its_filters_and_gives_no_row() -> None:
    query = """let hosts = (Event | where Source == "Sysmon" | summarize by Computer);
SecurityEvent | where Computer in (hosts) | where Computer !in (Other | where Bad == 1)"""

    result = parse_kusto(query)

    assert result.tree == And((Pred("Source", "eq", ("Sysmon",)),
                               Not(Pred("Bad", "eq", ("1",)))))
    assert set(result.event_types) == {"sentinel:table/SecurityEvent", "sentinel:table/Event",
                                       "sentinel:table/Other"}


def test_reference_list_gives_in_row_with_its_name() -> None:
    query = """let allow = _GetWatchlist('ServiceAccounts') | project SearchKey;
let known = datatable(name:string)["a", "b"];
T | where Account !in (allow) and Host in (known)"""

    assert rows(query) == [("Account", "in", "allow", True, True),
                           ("Host", "in", "known", False, False)]


def test_union_is_an_or_of_branches() -> None:
    query = """union isfuzzy=true
(SecurityEvent | where EventID == 4688 | where CommandLine has "x"),
(DeviceProcessEvents | where ProcessCommandLine has "x")
| where Account != "SYSTEM" """

    result = parse_kusto(query)

    assert result.tree == And((
        Or((And((Pred("EventID", "eq", ("4688",)), Pred("CommandLine", "match", ("x",)))),
            Pred("ProcessCommandLine", "match", ("x",)))),
        Pred("Account", "eq", ("SYSTEM",), negated=True)))
    assert result.event_types == ("sentinel:table/SecurityEvent",
                                  "sentinel:table/SecurityEvent/4688",
                                  "sentinel:table/DeviceProcessEvents")


def test_union_of_names_and_union_stage() -> None:
    result = parse_kusto("union SigninLogs, AADNonInteractiveUserSignInLogs\n"
                         "| where ResultType == 0 | union (AuditLogs | where X == 1)")

    assert result.tree == Or((Pred("ResultType", "eq", ("0",)), Pred("X", "eq", ("1",))))
    assert result.event_types == ("sentinel:table/SigninLogs",
                                  "sentinel:table/AADNonInteractiveUserSignInLogs",
                                  "sentinel:table/AuditLogs")


def test_join_and_lookup_subqueries_are_parsed() -> None:
    query = """SigninLogs | where ResultType == 0
| join kind=inner (AuditLogs | where OperationName has "Add member") on $left.UserId == $right.Id
| lookup kind=leftouter (IdentityInfo | where IsAdmin == true) on AccountUPN
| join kind=leftanti (SigninLogs | where Location == "US") on UserPrincipalName"""

    assert rows(query) == [
        ("ResultType", "eq", "0", False, False),
        ("OperationName", "match", "Add member", False, False),
        ("IsAdmin", "eq", "true", False, False),
        ("Location", "eq", "US", True, True),
    ]


def test_join_with_bare_table_name() -> None:
    result = parse_kusto("A | where X == 1 | join kind=inner B on Key")

    assert result.event_types == ("sentinel:table/A", "sentinel:table/B")


def test_extend_and_project_rename_name_the_source_field() -> None:
    query = """DeviceProcessEvents
| extend Cmd = tolower(ProcessCommandLine), Parent = InitiatingProcessFileName
| project-rename Image = FolderPath
| project Cmd, Parent, Image, Acct = tostring(parse_json(AdditionalFields).Account)
| where Cmd has "-enc" and Parent =~ "winword.exe" and Image endswith "\\\\x.exe"
| where Acct == "root" """

    assert rows(query) == [
        ("ProcessCommandLine", "match", "-enc", False, False),
        ("InitiatingProcessFileName", "eq", "winword.exe", False, False),
        ("FolderPath", "ends_with", "\\x.exe", False, False),
        ("AdditionalFields.Account", "eq", "root", False, False),
    ]


def test_computed_columns_are_marked_and_reported() -> None:
    query = """T | extend FileName = tostring(split(Path, "\\\\")[-1])
| where FileName == "cmd.exe" and strlen(CommandLine) > 1000"""

    result = parse_kusto(query)

    assert result.tree == And((Pred("FileName", "eq", ("cmd.exe",), computed=True),
                               Pred("strlen(CommandLine)", "gt", ("1000",), computed=True)))
    assert [p.kind for p in result.problems] == ["computed_field", "computed_field"]


def test_summarize_results_are_computed_and_thresholds_give_no_row() -> None:
    query = """T | where A == "a"
| summarize Count = count(), Users = make_set(User), dcount(Host)
    by Computer, bin(TimeGenerated, 1h)
| where Count > 10 and dcount_Host between (2 .. 5) and Users has "admin"
| where Computer startswith "DC" """

    result = parse_kusto(query)

    assert result.tree == And((Pred("A", "eq", ("a",)),
                               Pred("Users", "match", ("admin",), computed=True),
                               Pred("Computer", "starts_with", ("DC",))))
    assert [p.message for p in result.problems] == [
        "filter on computed column 'Users', not a source field"]


def test_arg_max_star_keeps_the_columns() -> None:
    query = "T | summarize arg_max(TimeGenerated, *) by Id | where Active == true"

    assert rows(query) == [("Active", "eq", "true", False, False)]


def test_time_windows_and_column_comparisons_give_no_row() -> None:
    query = """T | where TimeGenerated > ago(1d) and TimeGenerated between (ago(2d) .. now())
| where StartTime < datetime(2021-01-01T00:00:00Z) and A == B and A != "" """

    assert rows(query) == [("A", "eq", "", True, True)]


def test_search_terms() -> None:
    result = parse_kusto('search in (SecurityEvent, Syslog) "mimikatz" and Account:"admin"')

    assert result.tree == And((Pred("", "keyword", ("mimikatz",)),
                               Pred("Account", "match", ("admin",))))
    assert result.event_types == ("sentinel:table/SecurityEvent", "sentinel:table/Syslog")


def test_star_has_is_a_keyword() -> None:
    assert rows('T | where * has "evil.com"') == [("", "keyword", "evil.com", False, False)]


def test_event_types_for_tables_asim_and_event_ids() -> None:
    query = """union SecurityEvent, imProcessCreate, _Im_Dns
| where EventID in (4688, 4624) or EventID != 1"""

    result = parse_kusto(query)

    assert result.event_types == (
        "sentinel:table/SecurityEvent", "sentinel:asim/imProcessCreate", "sentinel:asim/_Im_Dns",
        "sentinel:table/SecurityEvent/4688", "sentinel:table/SecurityEvent/4624")


def test_let_function_with_table_parameter() -> None:
    query = """let fails = (tableName:string) {
    table(tableName) | where ResultType != "0" | summarize count() by IPAddress
};
union fails("SigninLogs"), fails("AADNonInteractiveUserSignInLogs")"""

    result = parse_kusto(query)

    assert rows(query) == [("ResultType", "eq", "0", True, True)]
    assert result.event_types == ("sentinel:table/SigninLogs",
                                  "sentinel:table/AADNonInteractiveUserSignInLogs")


def test_ipv4_helpers_are_cidr_rows() -> None:
    query = 'T | where not(ipv4_is_private(SrcIp)) and ipv4_is_in_range(DstIp, "10.1.0.0/16")'

    assert rows(query) == [
        ("SrcIp", "cidr", "10.0.0.0/8", True, True),
        ("SrcIp", "cidr", "172.16.0.0/12", True, True),
        ("SrcIp", "cidr", "192.168.0.0/16", True, True),
        ("DstIp", "cidr", "10.1.0.0/16", False, False),
    ]


def test_mv_expand_and_mv_apply() -> None:
    query = """T | mv-expand Item = Items to typeof(string)
| where Item has "x"
| mv-apply Tag = Tags on (where Tag == "y" | take 1)"""

    assert rows(query) == [("Items", "match", "x", False, False), ("Tags", "eq", "y", False, False)]


def test_parse_outputs_are_computed() -> None:
    query = 'T | parse EventData with * "Status\\">" Status "<" * | where Status == "0x0"'

    result = parse_kusto(query)

    assert result.tree == Pred("Status", "eq", ("0x0",), computed=True)


def test_unreadable_stage_is_unparsed_and_the_rest_kept() -> None:
    query = 'T | where A == "a"\n| frobnicate B\n| where C == "c"'

    result = parse_kusto(query, first_line=10)

    assert result.tree == And((Pred("A", "eq", ("a",)),
                               Unparsed("frobnicate B", "unknown operator frobnicate (line 11)"),
                               Pred("C", "eq", ("c",))))


def test_unknown_function_in_where_is_an_unparsed_leaf() -> None:
    tree = parse_kusto('T | where A == "a" and geo_is_evil(Ip)').tree

    assert tree == And((Pred("A", "eq", ("a",)),
                        Unparsed("geo_is_evil(Ip)", "unknown function geo_is_evil")))


def test_bad_where_term_alone_is_unparsed() -> None:
    tree = parse_kusto('T | where A == "a" and B like "b" and C == "c"').tree

    assert tree == And((Pred("A", "eq", ("a",)),
                        Unparsed('B like "b"', "syntax error in where: unexpected 'like' (line 1)"),
                        Pred("C", "eq", ("c",))))


def test_bool_function_compared_with_false() -> None:
    assert rows("T | where ipv4_is_private(Ip) == false") == [
        ("Ip", "cidr", "10.0.0.0/8", True, True), ("Ip", "cidr", "172.16.0.0/12", True, True),
        ("Ip", "cidr", "192.168.0.0/16", True, True)]


def test_bracketed_column_names_and_dynamic_paths() -> None:
    query = """T | where ['Event Name'] == "x" and parse_json(Extra).user.name == "bob"
| where Props["key"] == "v" and TargetResources[0].id == "1" """

    assert rows(query) == [
        ("Event Name", "eq", "x", False, False), ("Extra.user.name", "eq", "bob", False, False),
        ("Props.key", "eq", "v", False, False), ("TargetResources[0].id", "eq", "1", False, False),
    ]


def test_column_ifexists_names_the_column() -> None:
    assert rows('T | where column_ifexists("Image", "") endswith "x.exe"') == [
        ("Image", "ends_with", "x.exe", False, False)]


def test_asim_parser_parameters_are_filters() -> None:
    query = """let domains = dynamic(["a.com", "b.com"]);
imDns(domain_has_any=domains, responsecodename='NXDOMAIN', starttime=ago(1d))
| where SrcIpAddr != "10.0.0.1" """

    result = parse_kusto(query)

    assert rows(query) == [
        ("domain", "match", "a.com", False, False), ("domain", "match", "b.com", False, False),
        ("responsecodename", "eq", "NXDOMAIN", False, False),
        ("SrcIpAddr", "eq", "10.0.0.1", True, True),
    ]
    assert result.event_types == ("sentinel:asim/imDns",)


def test_partition_stages_filter_and_top_nested_aggregates() -> None:
    query = """DeviceEvents | where ActionType == "UsbDriveMount"
| partition by DeviceId (where DriveType == "Removable" | top 1 by Timestamp)
| top-nested 10 of RemoteDomain by Count = dcount(DeviceId) asc
| where RemoteDomain endswith ".ru" and Count < 3"""

    assert rows(query) == [
        ("ActionType", "eq", "UsbDriveMount", False, False),
        ("DriveType", "eq", "Removable", False, False),
        ("RemoteDomain", "ends_with", ".ru", False, False),
    ]


def test_set_has_element_with_a_literal_set() -> None:
    query = 'let parents = dynamic(["services.exe"]); T | where set_has_element(parents, Parent)'

    assert rows(query) == [("Parent", "eq", "services.exe", False, False)]
