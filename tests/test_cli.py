"""The `kb` command on the demo corpus and on the mistakes a user can make."""

import json

import pytest
from typer.testing import CliRunner

from kb.cli import app
from kb.commands.common import EXIT_OK, EXIT_USER_ERROR
from kb.demo import demo_attack_bundle, demo_sources
from kb.graph.ladybug_backend import LadybugBackend

runner = CliRunner()
PREDICATE_KEYS = {"field", "canonical_field", "op", "value", "negated", "exclusion"}
RULE_KEYS = {"uid", "vendor", "native_id", "title", "language", "techniques", "event_types",
             "parse_status", "problems", "predicates"}


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("demo") / "demo.lbug"
    args = ["build", "--attack", str(demo_attack_bundle()), "--db", str(db)]
    for source in demo_sources():
        args += ["--source", str(source)]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_OK, result.output
    return db


def test_cli_demo_builds_and_prints_a_guide():
    result = runner.invoke(app, ["demo"])

    assert result.exit_code == EXIT_OK, result.output
    assert "T1505 Server Software Component" in result.output
    assert "Top indicators" in result.output


def test_cli_build_writes_the_report_beside_the_database(demo_db):
    report = json.loads(demo_db.with_suffix(".report.json").read_text())

    assert report["vendors"]["sigma"]["rules"] == 4
    assert report["redirects"][0]["tagged"] == "T1086"


def test_cli_guide_json_sections(demo_db):
    result = runner.invoke(app, ["guide", "T1505", "--format", "json", "--db", str(demo_db)])
    guide = json.loads(result.output)

    assert set(guide) == {"technique", "events", "fields", "indicators", "exclusions",
                          "rules_by_vendor", "sources", "filters"}
    assert guide["technique"]["rules"] == 8
    assert sorted(guide["rules_by_vendor"]) == ["chronicle", "elastic", "panther", "sentinel",
                                                "sigma", "splunk"]
    assert {x["value"] for x in guide["exclusions"]} >= {"healthcheck.cmd", "\\msdeploy.exe"}


def test_cli_guide_filters_match_without_case_and_show_in_the_headline(demo_db):
    result = runner.invoke(app, ["guide", "T1505", "--vendor", "Sigma", "--db", str(demo_db)])

    assert result.exit_code == EXIT_OK, result.output
    assert "Rules: 8 (3 with vendor sigma)" in result.output
    assert "Rules: sigma (3)" in result.output
    assert "Rules: elastic" not in result.output


def test_cli_guide_filter_no_rule_has_is_a_user_error(demo_db):
    result = runner.invoke(app, ["guide", "T1505", "--platform", "solaris", "--db",
                                 str(demo_db)])

    assert result.exit_code == EXIT_USER_ERROR
    assert "no rule has platform 'solaris' (known: " in result.output
    assert "Traceback" not in result.output


def test_cli_guide_of_a_revoked_technique_names_its_replacement(demo_db):
    result = runner.invoke(app, ["guide", "T1086", "--db", str(demo_db)])

    assert result.exit_code == EXIT_OK, result.output
    assert "Revoked by ATT&CK: its rules are under T1059.001" in result.output


def test_cli_guide_markdown_has_tables(demo_db):
    result = runner.invoke(app, ["guide", "T1505.003", "--format", "markdown", "--db",
                                 str(demo_db)])

    assert result.exit_code == EXIT_OK
    assert result.output.startswith("# T1505.003 Web Shell")
    assert "## Top indicators" in result.output
    assert "| Field | Op | Value |" in result.output


def test_cli_parse_json_shape(demo_db):
    rule = demo_sources()[0] / "rules" / "web" / "web_shell_child_shell.yml"

    result = runner.invoke(app, ["parse", str(rule), "--format", "json"])
    [parsed] = json.loads(result.output)

    assert set(parsed) == RULE_KEYS
    assert all(set(p) == PREDICATE_KEYS for p in parsed["predicates"])
    assert {"field": "CommandLine", "canonical_field": parsed["predicates"][-1]["canonical_field"],
            "op": "contains", "value": "healthcheck.cmd", "negated": True,
            "exclusion": True} == parsed["predicates"][-1]


def test_cli_rule_and_stats(demo_db):
    rule = runner.invoke(app, ["rule", "sigma:5b0e3c1a-7d64-4f0e-9a51-3e2b8c7d1f04",
                               "--format", "json", "--db", str(demo_db)])
    stats = runner.invoke(app, ["stats", "--format", "json", "--db", str(demo_db)])

    assert json.loads(rule.output)["techniques"] == ["T1059.001"]
    by_vendor = {row["vendor"]: row["rules"] for row in json.loads(stats.output)["vendors"]}
    assert by_vendor == {"chronicle": 1, "elastic": 1, "panther": 1, "sentinel": 1, "sigma": 4,
                         "splunk": 1}


def test_cli_query_by_name_with_params(demo_db):
    result = runner.invoke(app, ["query", "guide_rules", "--param", "technique=T1505",
                                 "--param", "include_subtechniques=false", "--format", "json",
                                 "--db", str(demo_db)])

    assert result.exit_code == EXIT_OK, result.output
    assert [row["uid"] for row in json.loads(result.stdout)] == [
        "elastic:6c1d2e3f-0000-4000-8000-00000000e001",
        "sentinel:8e3f4051-0000-4000-8000-00000000a001"]
    assert result.stderr.startswith("kb: note: guide_rules runs with include_deprecated=False, "
                                    "platform='', domain='', vendor='' from its :params line")


def test_cli_query_lists_canned_queries():
    result = runner.invoke(app, ["query"])

    assert "guide_indicators" in result.output


def test_cli_query_lists_canned_queries_as_json():
    result = runner.invoke(app, ["query", "--format", "json"])
    listed = {entry["name"]: entry for entry in json.loads(result.output)}

    assert listed["rule_facets"]["parameters"] == {}
    assert listed["guide_rules"]["parameters"]["technique"] == "T1505"
    assert listed["guide_rules"]["answers"].startswith("Authoring guide, rules by vendor")


@pytest.mark.parametrize(("args", "message"), [
    (["guide", "T9999"], "unknown technique T9999"),
    (["guide", "webshell"], "not an ATT&CK technique id"),
    (["rule", "sigma:nope"], "no rule 'sigma:nope'"),
    (["query", "nope"], "no canned query named 'nope'"),
    (["query", "guide_rules", "--param", "limit"], "expected key=value"),
    (["query", "guide_rules", "--param", "include_deprecated=maybe"], "expected true or false"),
    (["query", "guide_rules", "--param", "colour=red"], "takes no parameter colour"),
])
def test_cli_user_errors_exit_2_with_one_line(demo_db, args, message):
    result = runner.invoke(app, [*args, "--db", str(demo_db)])

    assert result.exit_code == EXIT_USER_ERROR
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_missing_database_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["guide", "T1505", "--db", str(tmp_path / "none.lbug")])

    assert result.exit_code == EXIT_USER_ERROR
    assert "no knowledge base here" in result.output


def test_cli_missing_source_and_bad_bundle_are_user_errors(tmp_path):
    bad_bundle = tmp_path / "bundle.json"
    bad_bundle.write_text("[]")

    missing = runner.invoke(app, ["build", "--source", str(tmp_path / "nope"), "--attack",
                                  str(demo_attack_bundle()), "--db", str(tmp_path / "k.lbug")])
    bad = runner.invoke(app, ["build", "--source", str(demo_sources()[0]), "--attack",
                              str(bad_bundle), "--db", str(tmp_path / "k.lbug")])

    assert missing.exit_code == EXIT_USER_ERROR
    assert "no such file or folder" in missing.output
    assert bad.exit_code == EXIT_USER_ERROR
    assert "not a STIX bundle" in bad.output


def test_cli_parse_names_the_file_of_an_unknown_format(tmp_path):
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")

    result = runner.invoke(app, ["parse", str(odd)])

    assert result.exit_code == EXIT_USER_ERROR
    assert "notes.txt: not a rule file of a known vendor" in result.output


@pytest.mark.parametrize("vendor", ["sigma", "elastic", "splunk", "sentinel", "chronicle",
                                    "panther"])
def test_cli_parse_a_lone_demo_rule_of_each_vendor_fully(vendor):
    folder = next(s for s in demo_sources() if s.name == vendor)
    rule = next(p for p in sorted(folder.rglob("*"))
                if p.suffix in (".yml", ".yaml", ".toml", ".yaral") and "macros" not in p.parts)

    result = runner.invoke(app, ["parse", str(rule), "--format", "json"])
    [parsed] = json.loads(result.output)

    assert parsed["vendor"] == vendor
    assert parsed["parse_status"] == "full"
    assert parsed["predicates"]


def test_cli_rule_shows_its_text_and_gives_its_condition_tree_as_json(demo_db):
    uid = "sigma:5b0e3c1a-7d64-4f0e-9a51-3e2b8c7d1f01"

    shown = runner.invoke(app, ["rule", uid, "--db", str(demo_db)], terminal_width=200)
    data = runner.invoke(app, ["rule", uid, "--format", "json", "--db", str(demo_db)])

    assert shown.exit_code == data.exit_code == EXIT_OK, shown.output
    assert "Rule text" in shown.output
    assert "condition: all of selection_* and not 1 of filter_*" in shown.output
    rule = json.loads(data.output)
    assert rule["text"].startswith("title: Demo - Shell Spawned By A Web Server Process\n")
    assert [next(iter(stage)) for stage in rule["condition"]["and"]] == ["or", "or", "not"]
    assert rule["condition"]["and"][2] == {"not": {"pred": {
        "field": "CommandLine", "op": "contains", "values": ["healthcheck.cmd"],
        "negated": False, "computed": False}}}


def test_cli_parse_a_plain_folder_of_sigma_rules(tmp_path):
    for rule in (demo_sources()[0] / "rules" / "web").glob("*.yml"):
        (tmp_path / rule.name).write_text(rule.read_text())

    result = runner.invoke(app, ["parse", str(tmp_path), "--format", "json"])

    assert result.exit_code == EXIT_OK, result.output
    assert [r["vendor"] for r in json.loads(result.output)] == ["sigma"] * 3


def test_cli_plain_folder_keeps_files_that_are_not_sigma_rules_as_broken_rules(tmp_path):
    for rule in (demo_sources()[0] / "rules" / "web").glob("*.yml"):
        (tmp_path / rule.name).write_text(rule.read_text())
    (tmp_path / "a_empty.yml").write_text("")
    (tmp_path / "b_notes.yml").write_text("owner: soc\n")

    result = runner.invoke(app, ["parse", str(tmp_path), "--format", "json"])
    parsed = {r["uid"]: r for r in json.loads(result.output)}

    assert result.exit_code == EXIT_OK, result.output
    assert [r["parse_status"] for r in parsed.values()].count("full") == 3
    assert parsed["sigma:a_empty.yml"]["problems"][0]["message"] == (
        "not a Sigma rule: the file is not a YAML mapping")
    assert parsed["sigma:b_notes.yml"]["problems"][0]["message"] == (
        "not a Sigma rule: no detection: top-level keys owner")


def test_cli_build_report_names_each_problem_with_its_rule_and_file(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    for rule in (demo_sources()[0] / "rules" / "web").glob("*.yml"):
        (rules / rule.name).write_text(rule.read_text())
    (rules / "broken.yml").write_text("title: x\ndetection:\n  sel: [\n")
    db = tmp_path / "kb.lbug"

    result = runner.invoke(app, ["build", "--source", str(rules), "--attack",
                                 str(demo_attack_bundle()), "--db", str(db)])
    report = json.loads(db.with_suffix(".report.json").read_text())

    assert result.exit_code == EXIT_OK, result.output
    assert report["vendors"]["sigma"]["parse_status"] == {"full": 3, "none": 1}
    [problem] = report["problems"]
    assert (problem["uid"], problem["path"], problem["kind"], problem["line"]) == (
        "sigma:broken.yml", "broken.yml", "syntax", 4)


def test_cli_failed_first_build_leaves_no_database(tmp_path):
    db = tmp_path / "kb.lbug"
    bad_bundle = tmp_path / "bundle.json"
    bad_bundle.write_text('{"type": "bundle", "objects": []}')

    build = runner.invoke(app, ["build", "--source", str(demo_sources()[0]), "--attack",
                                str(bad_bundle), "--db", str(db)])
    guide = runner.invoke(app, ["guide", "T1505", "--db", str(db)])

    assert build.exit_code == EXIT_USER_ERROR
    assert list(tmp_path.iterdir()) == [bad_bundle]
    assert guide.exit_code == EXIT_USER_ERROR
    assert "no knowledge base here" in guide.output


@pytest.mark.parametrize(("content", "message"), [
    (None, "the database is empty, a build did not finish"),
    (b'{"vendors": {}}', "is it a knowledge base kb built?"),
])
def test_cli_a_file_that_is_no_knowledge_base_is_a_user_error(tmp_path, content, message):
    db = tmp_path / "kb.lbug"
    if content is None:
        LadybugBackend(db).close()
    else:
        db.write_bytes(content)

    result = runner.invoke(app, ["stats", "--db", str(db)])

    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert message in result.output


def test_cli_build_into_a_folder_or_a_foreign_file_is_a_user_error(tmp_path):
    foreign = tmp_path / "notes.json"
    foreign.write_text("{}")

    for db in (tmp_path, foreign):
        result = runner.invoke(app, ["build", "--source", str(demo_sources()[0]), "--attack",
                                     str(demo_attack_bundle()), "--db", str(db)])

        assert result.exit_code == EXIT_USER_ERROR, result.output
        assert "cannot open the database" in result.output
    assert foreign.read_text() == "{}"


def test_cli_unwritable_output_path_is_one_line_and_exit_2(demo_db, tmp_path):
    result = runner.invoke(app, ["navigator", "--out", str(tmp_path / "no" / "dir" / "l.json"),
                                 "--db", str(demo_db)])

    assert result.exit_code == EXIT_USER_ERROR
    assert "No such file or directory" in result.output
    assert "Traceback" not in result.output
