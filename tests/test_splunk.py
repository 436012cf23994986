"""The Splunk loader on small searches and detections written for the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.model import Not, Pred, Unparsed, flatten
from kb.sources import RuleFile, Source
from loaders import splunk
from loaders.splunk_macros import CYCLE, MISSING, Macro, expand, scan
from loaders.splunk_spl import TRUE, fold_like, fold_wildcards, parse_spl, split_pipeline

MACROS = {
    "sysmon": Macro("sysmon", "sourcetype=xmlwineventlog OR source=XmlWinEventLog:Sysmon"),
    "process_cmd": Macro("process_cmd", "(Processes.process_name=cmd.exe OR "
                                        "Processes.original_file_name=Cmd.Exe)"),
    "summariesonly": Macro("summariesonly", "summariesonly=`summariesonly_config` "
                                            "allow_old_summaries=true"),
    "summariesonly_config": Macro("summariesonly_config", "false"),
    "ctime": Macro("ctime", 'convert timeformat="%Y" ctime($field$)', ("field",)),
    "two_args": Macro("two_args", "$f$=$v$", ("f", "v")),
    "outer": Macro("outer", "`inner(x)` b=2"),
    "inner": Macro("inner", "a=$p$", ("p",)),
    "loop_a": Macro("loop_a", "`loop_b`"),
    "loop_b": Macro("loop_b", "`loop_a`"),
}


def rows(search: str, macros: dict[str, Macro] | None = None) -> set[tuple]:
    """The predicate rows of a search as (field, op, value, negated, exclusion) tuples."""
    expansion = expand(search, MACROS if macros is None else macros)
    result = parse_spl(expansion.text, expansion.unresolved)
    return {(r.field, r.op, r.value, r.negated, r.exclusion) for r in flatten(result.condition)}


def computed(search: str) -> set[str]:
    result = parse_spl(expand(search, MACROS).text)
    return {r.field for r in flatten(result.condition) if r.computed}


def condition(search: str):
    expansion = expand(search, MACROS)
    return parse_spl(expansion.text, expansion.unresolved).condition


# ---------------------------------------------------------------------------------------------
# Macros


def test_expand_macro_with_arguments():
    assert expand("x | `two_args(user, admin)`", MACROS).text.split() == ["x", "|", "user=admin"]


def test_expand_macros_recursively():
    assert expand("`outer`", MACROS).text.split() == ["a=x", "b=2"]


def test_expand_cycle_stays_unexpanded_with_its_reason():
    expansion = expand("`loop_a`", MACROS)

    assert "`loop_a`" in expansion.text
    assert expansion.unresolved == {"`loop_a`": CYCLE}


def test_expand_missing_macro_becomes_unparsed_leaf_named_after_it():
    expansion = expand("a=1 `nowhere(x)`", MACROS)

    result = parse_spl(expansion.text, expansion.unresolved)

    assert result.condition.children[1] == Unparsed("`nowhere(x)`", MISSING)


def test_expand_filter_and_dm_macros_have_defaults():
    text = expand("| `drop_dm_object_name(Processes)` | `my_rule_filter`", {}).text

    assert [stage.strip() for stage in split_pipeline(text)] == [
        "", "rename Processes.* as *", "search *"]


def test_expand_drops_comments_and_keeps_quoted_backticks():
    pieces = scan('a ```note `m` ``` b="`x`" `m`')

    assert pieces == [("text", "a "), ("comment", "```note `m` ```"), ("text", ' b="`x`" '),
                      ("macro", "`m`")]


def test_expand_summaries_macro_adds_no_row():
    search = "| tstats `summariesonly` count from datamodel=Endpoint.Processes where a=1 by b"

    assert rows(search) == {("a", "eq", "1", False, False)}


def test_expand_filter_macro_adds_nothing():
    assert rows("`sysmon` EventCode=1 | `rule_filter`") == {
        ("sourcetype", "eq", "xmlwineventlog", False, False),
        ("source", "eq", "XmlWinEventLog:Sysmon", False, False),
        ("EventCode", "eq", "1", False, False),
    }


# ---------------------------------------------------------------------------------------------
# Pipeline and search terms


def test_split_pipeline_respects_quotes_backticks_and_brackets():
    text = 'a="x|y" `m(a|b)` | join k [search b | stats count] | where match(c, "d|e")'

    assert [stage.strip() for stage in split_pipeline(text)] == [
        'a="x|y" `m(a|b)`', "join k [search b | stats count]", 'where match(c, "d|e")']


def test_search_or_binds_tighter_than_implied_and():
    tree = condition("a=1 b=2 OR c=3")

    assert tree.children[0] == Pred("a", "eq", ("1",))
    assert {type(child).__name__ for child in tree.children} == {"Pred", "Or"}


def test_search_not_and_inequality_are_exclusions():
    assert rows('a=1 NOT b=2 c!="x" NOT (d=1 OR e=2)') == {
        ("a", "eq", "1", False, False),
        ("b", "eq", "2", True, True),
        ("c", "eq", "x", True, True),
        ("d", "eq", "1", True, True),
        ("e", "eq", "2", True, True),
    }


def test_search_negation_inside_or_is_no_exclusion():
    assert rows("a=1 OR NOT b=2") == {("a", "eq", "1", False, False),
                                      ("b", "eq", "2", True, False)}


def test_search_wildcards_fold_into_operators():
    assert rows('p=*x* q=x* r=*x s=a*b t=* u="*"') == {
        ("p", "contains", "x", False, False),
        ("q", "starts_with", "x", False, False),
        ("r", "ends_with", "x", False, False),
        ("s", "wildcard", "a*b", False, False),
        ("t", "is_not_null", "", False, False),
        ("u", "is_not_null", "", False, False),
    }


def test_search_in_list_gives_in_rows_and_pattern_rows():
    assert rows('p IN ("a.exe", b.exe, "*\\\\temp\\\\*") q IN (one)') == {
        ("p", "in", "a.exe", False, False),
        ("p", "in", "b.exe", False, False),
        ("p", "contains", "\\temp\\", False, False),
        ("q", "eq", "one", False, False),
    }


def test_search_quotes_with_escaped_quotes_and_backslashes():
    assert rows(r'cmd="say \"hi\" *" path="C:\\Windows\\*" "quoted.field"=v') == {
        ("cmd", "starts_with", 'say "hi" ', False, False),
        ("path", "starts_with", "C:\\Windows\\", False, False),
        ("quoted.field", "eq", "v", False, False),
    }


def test_search_nested_parentheses():
    tree = condition("(a=1 AND (b=2 OR (c=3 NOT (d=4))))")

    assert rows("(a=1 AND (b=2 OR (c=3 NOT (d=4))))") == {
        ("a", "eq", "1", False, False),
        ("b", "eq", "2", False, False),
        ("c", "eq", "3", False, False),
        ("d", "eq", "4", True, False),
    }
    assert tree.children[0] == Pred("a", "eq", ("1",))


def test_search_keywords_and_term_are_fieldless_rows():
    assert rows('"disabled" TERM(10.0.0.1) failed*') == {
        ("", "keyword", "disabled", False, False),
        ("", "keyword", "10.0.0.1", False, False),
        ("", "keyword", "failed*", False, False),
    }


def test_search_data_selection_is_rows_and_time_window_is_not():
    assert rows("index=main sourcetype=x:y source=s earliest=-24h latest=now *") == {
        ("index", "eq", "main", False, False),
        ("sourcetype", "eq", "x:y", False, False),
        ("source", "eq", "s", False, False),
    }


def test_search_parentheses_inside_a_value():
    assert rows("p=*GetCurrent()* (q=1)") == {("p", "contains", "GetCurrent()", False, False),
                                               ("q", "eq", "1", False, False)}


def test_search_numeric_comparisons():
    assert rows("a>5 b<=2") == {("a", "gt", "5", False, False), ("b", "lte", "2", False, False)}


def test_search_syntax_error_is_unparsed_stage():
    tree = condition('a=1 | search b=(')

    assert tree.children[0] == Pred("a", "eq", ("1",))
    assert isinstance(tree.children[1], Unparsed)
    assert tree.children[1].reason.startswith("syntax error")


# ---------------------------------------------------------------------------------------------
# tstats and data models


def test_tstats_fields_kept_as_written_and_datamodel_is_event_type():
    search = ("| tstats `summariesonly` count min(_time) as firstTime "
              "from datamodel=Endpoint.Processes where `process_cmd` "
              "Processes.process=*/c* by Processes.dest Processes.user")

    result = parse_spl(expand(search, MACROS).text)

    assert result.event_types == ["splunk:datamodel/Endpoint.Processes"]
    assert {(r.field, r.op, r.value) for r in flatten(result.condition)} == {
        ("Processes.process_name", "eq", "cmd.exe"),
        ("Processes.original_file_name", "eq", "Cmd.Exe"),
        ("Processes.process", "contains", "/c"),
    }


def test_tstats_nodename_selects_the_dataset():
    search = ('| tstats count from datamodel=Network_Resolution where nodename=DNS '
              '"DNS.message_type"="QUERY" by "DNS.src"')

    result = parse_spl(search)

    assert result.event_types == ["splunk:datamodel/Network_Resolution.DNS"]
    assert flatten(result.condition)[0].field == "DNS.message_type"
    assert len(flatten(result.condition)) == 1


def test_tstats_without_where_filters_nothing():
    result = parse_spl("| tstats count from datamodel=Web by Web.src")

    assert result.condition == TRUE
    assert result.event_types == ["splunk:datamodel/Web"]


def test_from_datamodel_and_inputlookup_are_event_types():
    assert parse_spl("| from datamodel:Risk.All_Risk | stats count").event_types == [
        "splunk:datamodel/Risk.All_Risk"]
    lookup = parse_spl("| inputlookup users where role=admin")
    assert lookup.event_types == ["splunk:lookup/users"]
    assert flatten(lookup.condition)[0].field == "role"


# ---------------------------------------------------------------------------------------------
# where expressions


def test_where_like_match_cidrmatch_and_null_tests():
    search = ('x=1 | where like(a, "%cmd%") AND b LIKE "pre%" AND match(c, "^a\\\\d+") '
              'AND cidrmatch("10.0.0.0/8", d) AND isnull(e) AND isnotnull(f) AND g like "%z"')

    assert rows(search) == {
        ("x", "eq", "1", False, False),
        ("a", "contains", "cmd", False, False),
        ("b", "starts_with", "pre", False, False),
        ("c", "regex_match", "^a\\d+", False, False),
        ("d", "cidr", "10.0.0.0/8", False, False),
        ("e", "is_not_null", "", True, True),
        ("f", "is_not_null", "", False, False),
        ("g", "ends_with", "z", False, False),
    }


def test_where_in_comparisons_not_and_or():
    search = ('x=1 | where NOT user IN ("a", "b") AND (n >= 5 OR s != "x") '
              'AND lower(p)="cmd.exe"')

    assert rows(search) == {
        ("x", "eq", "1", False, False),
        ("user", "in", "a", True, True),
        ("user", "in", "b", True, True),
        ("n", "gte", "5", False, False),
        ("s", "eq", "x", True, False),
        ("p", "eq", "cmd.exe", False, False),
    }


def test_where_field_to_field_and_time_windows_give_no_row():
    search = 'x=1 | where a=b AND lower(c)=lower(d) AND t > relative_time(now(), "-1d")'

    assert rows(search) == {("x", "eq", "1", False, False)}


def test_where_threshold_on_aggregates_gives_no_row():
    search = ("x=1 | stats count dc(u) as users avg(n) as mean by host "
              "| where count > 5 AND users >= mean * 2 AND mvcount(host) > 1")

    assert rows(search) == {("x", "eq", "1", False, False)}


def test_where_unknown_function_on_source_field_is_unparsed():
    tree = condition("x=1 | where len(cmd) > 100")

    assert tree.children[1] == Unparsed("len(cmd) > 100", "expression")


def test_where_searchmatch_reads_search_terms():
    assert rows('x=1 | where searchmatch("a=*b*")') == {("x", "eq", "1", False, False),
                                                       ("a", "contains", "b", False, False)}


# ---------------------------------------------------------------------------------------------
# Renames, computed columns and later filters


def test_rename_and_drop_dm_object_name_name_the_source_field():
    search = ("| tstats count from datamodel=Endpoint.Processes where Processes.user=* "
              "by Processes.process Processes.dest | `drop_dm_object_name(Processes)` "
              "| rename dest as host | where match(process, \"x\") | search host=h1")

    assert rows(search) == {
        ("Processes.user", "is_not_null", "", False, False),
        ("Processes.process", "regex_match", "x", False, False),
        ("Processes.dest", "eq", "h1", False, False),
    }


def test_rename_does_not_reach_aggregates():
    search = ("| tstats count min(_time) as firstTime from datamodel=A.B by B.dest "
              "| `drop_dm_object_name(B)` | where count > 2 | search firstTime=1")

    assert rows(search) == set()


def test_eval_alias_is_followed_and_computation_is_marked():
    search = ("x=1 | eval host=lower(Computer), score=len(cmd) * 2 "
              '| search host=h1 | where score > 5 AND like(host, "%dc%")')

    assert rows(search) == {
        ("x", "eq", "1", False, False),
        ("Computer", "eq", "h1", False, False),
        ("score", "gt", "5", False, False),
        ("Computer", "contains", "dc", False, False),
    }
    assert computed(search) == {"score"}


def test_lookup_outputs_and_stats_values_columns():
    search = ("x=1 | lookup users name as user OUTPUT role as user_role, dept "
              "| stats values(cmd) as cmds count as n by user_role dept "
              '| search user_role=admin dept=it cmds="*whoami*" n=3')

    assert rows(search) == {
        ("x", "eq", "1", False, False),
        ("user_role", "eq", "admin", False, False),
        ("dept", "eq", "it", False, False),
        ("cmd", "contains", "whoami", False, False),
    }
    assert computed(search) == {"user_role", "dept"}


def test_rex_groups_and_spath_outputs():
    search = ('x=1 | rex field=cmd "(?<exe>\\w+)\\.exe" | spath output=actor path=a.b '
              "| search exe=cmd actor=root")

    assert rows(search) == {("x", "eq", "1", False, False), ("exe", "eq", "cmd", False, False),
                            ("a.b", "eq", "root", False, False)}
    assert computed(search) == {"exe"}


# ---------------------------------------------------------------------------------------------
# Subsearches and other filtering commands


def test_subsearch_lookup_list_is_an_in_row_naming_the_lookup():
    search = "x=1 NOT [| inputlookup allowed.csv | rename name as user | fields user]"

    assert rows(search) == {("x", "eq", "1", False, False),
                            ("user", "in", "allowed.csv", True, True)}


def test_subsearch_lookup_list_names_the_field_after_renames():
    search = ("| tstats count from datamodel=A.B where B.x=1 by B.user | `drop_dm_object_name(B)` "
              "| search NOT [| inputlookup admins | fields user]")

    assert rows(search) == {("B.x", "eq", "1", False, False),
                            ("B.user", "in", "admins", True, True)}


def test_subsearch_of_events_requires_its_conditions():
    assert rows("a=1 [search b=2 | fields host]") == {("a", "eq", "1", False, False),
                                                      ("b", "eq", "2", False, False)}


def test_subsearch_without_conditions_is_unparsed():
    tree = condition("a=1 [search * | stats count by host]")

    assert tree.children[1] == Unparsed("[search * | stats count by host]", "subsearch")


def test_inputlookup_append_makes_earlier_rows_one_branch():
    assert rows("a=1 NOT b=2 | inputlookup append=t baseline | stats count by c") == {
        ("a", "eq", "1", False, False),
        ("b", "eq", "2", True, False),
    }


def test_anomalydetection_filters_unless_it_only_annotates():
    assert rows("a=1 | anomalydetection f action=annotate | where isOutlier=1") == {
        ("a", "eq", "1", False, False), ("isOutlier", "eq", "1", False, False)}
    assert condition("a=1 | anomalydetection f").children[1].reason == "anomalydetection"


def test_inner_join_requires_the_subsearch_conditions():
    search = ("a=1 | join guid [| tstats count from datamodel=Endpoint.Filesystem "
              "where Filesystem.file_name=*.zip by guid] | join type=outer guid [search b=2]")

    result = parse_spl(search)

    assert {(r.field, r.op, r.value) for r in flatten(result.condition)} == {
        ("a", "eq", "1"), ("Filesystem.file_name", "ends_with", ".zip")}
    assert result.event_types == ["splunk:datamodel/Endpoint.Filesystem"]


def test_append_makes_an_alternative_branch():
    assert rows("a=1 NOT b=2 | append [search c=3]") == {
        ("a", "eq", "1", False, False),
        ("b", "eq", "2", True, False),
        ("c", "eq", "3", False, False),
    }


def test_regex_command_is_a_regex_row():
    assert rows('x=1 | regex cmd!="^a.*b$" | regex "evil"') == {
        ("x", "eq", "1", False, False),
        ("cmd", "regex_match", "^a.*b$", True, True),
        ("_raw", "regex_match", "evil", False, False),
    }


def test_transaction_start_and_end_conditions_both_hold():
    search = "EventCode IN (1, 2) | transaction id startswith=(EventCode=1) endswith=(EventCode=2)"

    assert rows(search) == {
        ("EventCode", "in", "1", False, False),
        ("EventCode", "in", "2", False, False),
        ("EventCode", "eq", "1", False, False),
        ("EventCode", "eq", "2", False, False),
    }


def test_unsupported_command_is_never_skipped():
    tree = condition("a=1 | map search=\"search b=$x$\" | stats count")

    assert tree.children[1] == Unparsed('search="search b=$x$"', "map search")


def test_unknown_command_is_unparsed_by_name():
    tree = condition("a=1 | frobnicate b")

    assert tree.children[1] == Unparsed("frobnicate b", "unsupported command frobnicate")


def test_non_filtering_stages_add_nothing():
    search = ('a=1 | bin _time span=5m | fillnull | table a b | dedup a | sort - a '
              '| `ctime(firstTime)` | fields - b | mvexpand a')

    assert condition(search) == Pred("a", "eq", ("1",))


def test_negated_lookup_filter_under_not():
    tree = condition("a=1 | where NOT isnull(b)")

    assert tree.children[1] == Not(Pred("b", "is_not_null", ("",), negated=True))


# ---------------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize(("value", "expected"), [
    ("*", ("is_not_null", "")),
    ("*a*", ("contains", "a")),
    ("a*", ("starts_with", "a")),
    ("*a", ("ends_with", "a")),
    ("*a*b*", ("wildcard", "*a*b*")),
    ("a", ("eq", "a")),
])
def test_fold_wildcards(value, expected):
    assert fold_wildcards(value) == expected


def test_fold_like_reads_percent_as_wildcard():
    assert fold_like("%a%") == ("contains", "a")
    assert fold_like("a%b") == ("wildcard", "a*b")
    assert fold_like("a_b") == ("eq", "a_b")


# ---------------------------------------------------------------------------------------------
# The loader: files, context and records

DETECTION = """\
name: Cmd Spawned
id: 0000-1111
version: 2
date: '2024-01-01'
status: production
type: TTP
data_source:
- Sysmon EventID 1
search: '`sysmon` EventCode=1 Image="*\\\\cmd.exe" NOT User=SYSTEM | stats count by dest
  | `cmd_spawned_filter`'
tags:
  analytic_story:
  - Story
  mitre_attack_id:
  - t1059.003
  - T1059
  security_domain: endpoint
"""

DATA_SOURCE = """\
name: Sysmon EventID 1
id: ds-1
source: XmlWinEventLog:Microsoft-Windows-Sysmon/Operational
sourcetype: xmlwineventlog
separator: EventID
fields:
- Image
field_mappings:
- data_model: cim
  data_set: Endpoint.Processes
  mapping:
    Image: Processes.process_path
"""

SYSMON_MACRO = "name: sysmon\ndefinition: sourcetype=xmlwineventlog\ndescription: d\n"


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    for folder, name, text in [("detections/endpoint", "cmd_spawned.yml", DETECTION),
                               ("detections/deprecated", "old.yml", DETECTION),
                               ("macros", "sysmon.yml", SYSMON_MACRO),
                               ("data_sources", "sysmon_eventid_1.yml", DATA_SOURCE)]:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_splunk_detect_and_rule_paths(repository):
    source = Source.open(repository)

    assert splunk.detect(source)
    assert splunk.rule_paths(source) == ["detections/deprecated/old.yml",
                                         "detections/endpoint/cmd_spawned.yml"]


def test_splunk_sniff_recognises_a_detection_only():
    assert splunk.sniff("x.yml", DETECTION)
    assert not splunk.sniff("x.yml", "title: t\nlogsource: {}\ndetection: {}\n")
    assert not splunk.sniff("x.toml", DETECTION)


def test_splunk_parse_file_builds_the_record(repository):
    source = Source.open(repository)
    context = splunk.load_context(source)

    [record] = splunk.parse_file(source.rule_file("detections/endpoint/cmd_spawned.yml"), context)

    assert record.uid == "splunk:0000-1111"
    assert (record.title, record.language, record.status) == ("Cmd Spawned", "spl", "production")
    assert record.techniques == ("T1059.003", "T1059")
    assert record.event_types == ("splunk:data_source/Sysmon EventID 1",)
    assert record.platforms == ("windows",)
    assert record.parse_status == "full"
    assert not record.deprecated
    assert {(r.field, r.op, r.value, r.negated, r.exclusion) for r in record.predicates} == {
        ("sourcetype", "eq", "xmlwineventlog", False, False),
        ("EventCode", "eq", "1", False, False),
        ("Image", "ends_with", "\\cmd.exe", False, False),
        ("User", "eq", "SYSTEM", True, True),
    }
    detail = record.properties["data_source_details"]["Sysmon EventID 1"]
    assert (detail["sourcetype"], detail["separator"], detail["event_id"]) == (
        "xmlwineventlog", "EventID", "1")
    assert detail["field_mappings"][0]["mapping"] == {"Image": "Processes.process_path"}
    assert record.properties["type"] == "TTP"
    assert context.data_sources["Sysmon EventID 1"]["fields"] == ["Image"]


def test_splunk_deprecated_folder_marks_the_record(repository):
    source = Source.open(repository)

    [record] = splunk.parse_file(source.rule_file("detections/deprecated/old.yml"),
                                 splunk.load_context(source))

    assert record.deprecated


def test_splunk_lone_file_finds_macros_above_it(repository):
    path = repository / "detections" / "endpoint" / "cmd_spawned.yml"

    [record] = splunk.parse_file(RuleFile(str(path), path.read_text()), splunk.load_context(None))

    assert ("sourcetype", "eq", "xmlwineventlog") in {
        (r.field, r.op, r.value) for r in record.predicates}
    assert record.properties["data_source_details"]["Sysmon EventID 1"]["event_id"] == "1"


def test_splunk_subfolder_source_finds_the_repository_context(repository):
    context = splunk.load_context(Source.open(repository / "detections"))

    assert set(context.macros) == {"sysmon"}
    assert set(context.data_sources) == {"Sysmon EventID 1"}


def test_splunk_lone_file_without_repository_keeps_macro_unparsed(tmp_path):
    path = tmp_path / "rule.yml"
    path.write_text(DETECTION, encoding="utf-8")

    [record] = splunk.parse_file(RuleFile(str(path), DETECTION), splunk.load_context(None))

    assert record.parse_status == "partial"
    assert record.problems[0].message.startswith(f"{MISSING}: `sysmon`")


def test_splunk_broken_yaml_names_the_line():
    [record] = splunk.parse_file(RuleFile("d/bad.yml", "name: x\nsearch: [a\nid: 1\n"), None)

    assert record.parse_status == "none"
    assert record.problems[0].kind == "yaml"
    assert record.problems[0].line is not None


def test_splunk_file_without_search_is_not_a_detection():
    [record] = splunk.parse_file(RuleFile("d/x.yml", "name: x\nid: 1\n"), None)

    assert record.problems[0].kind == "schema"


def test_splunk_empty_search_is_no_query():
    [record] = splunk.parse_file(RuleFile("d/x.yml", "name: x\nid: 1\nsearch: ''\n"), None)

    assert record.parse_status == "no_query"
