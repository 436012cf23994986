"""The whole Sigma snapshot with the ATT&CK bundle, built through `kb build` and read back."""

import json
import re
import tarfile

import pytest
from conftest import ARCHIVES, ATTACK_BUNDLE, CORPORA
from typer.testing import CliRunner

from kb.cli import app
from kb.commands.common import EXIT_OK

pytestmark = pytest.mark.corpus
runner = CliRunner()
_T1505_TAG = re.compile(r"^\s*-\s*attack\.t1505(\.\d{3})?\s*$", re.MULTILINE | re.IGNORECASE)


def independent_t1505_count() -> int:
    """Non-deprecated Sigma files tagged attack.t1505*, counted from the raw archive text."""
    count = 0
    with tarfile.open(CORPORA / ARCHIVES["sigma"]) as archive:
        for member in archive:
            path = member.name.split("/", 1)[-1]
            if not member.isfile() or not path.endswith(".yml") or path.startswith("deprecated/"):
                continue
            text = archive.extractfile(member).read().decode("utf-8")
            if _T1505_TAG.search(text) and not re.search(r"^status: deprecated", text, re.M):
                count += 1
    return count


@pytest.fixture(scope="module")
def sigma_db(tmp_path_factory, attack_catalog):
    db = tmp_path_factory.mktemp("sigma") / "kb.lbug"
    result = runner.invoke(app, ["build", "--source", str(CORPORA / ARCHIVES["sigma"]),
                                 "--attack", str(ATTACK_BUNDLE), "--db", str(db)])
    assert result.exit_code == EXIT_OK, result.output
    return db


def guide_json(db, *args):
    result = runner.invoke(app, ["guide", "T1505", "--format", "json", "--db", str(db), *args])
    assert result.exit_code == EXIT_OK, result.output
    return json.loads(result.output)


def test_build_sigma_writes_a_load_report(sigma_db):
    report = json.loads(sigma_db.with_suffix(".report.json").read_text())
    figures = report["vendors"]["sigma"]

    assert figures["rules"] == 3952
    assert figures["parse_status"]["full"] >= 3951
    assert report["attack_version"] == "18.1"
    assert {"uid": "sigma:867613fb-fa60-4497-a017-a82df74a172c", "tagged": "T1086",
            "now": "T1059.001"} in report["redirects"]


def test_build_sigma_t1505_guide_matches_an_independent_count(sigma_db):
    guide = guide_json(sigma_db)

    assert len(guide["rules_by_vendor"]["sigma"]) == independent_t1505_count() == 47
    assert guide["technique"]["rules"] == 47


def test_build_sigma_t1505_guide_sections(sigma_db):
    guide = guide_json(sigma_db)

    assert {e["event_type"] for e in guide["events"]} >= {"sigma:windows/process_creation",
                                                          "sigma:webserver"}
    assert guide["fields"]
    assert guide["indicators"]
    assert guide["exclusions"]
    top = guide["indicators"][0]
    assert top["reach"] >= top["rules"] >= 1


def test_build_sigma_t1505_without_subtechniques(sigma_db):
    assert guide_json(sigma_db, "--no-subtechniques")["technique"]["rules"] == 1


def test_build_sigma_rebuild_gives_the_same_graph(sigma_db, tmp_path):
    before = runner.invoke(app, ["stats", "--format", "json", "--db", str(sigma_db)]).output
    result = runner.invoke(app, ["build", "--source", str(CORPORA / ARCHIVES["sigma"]),
                                 "--attack", str(ATTACK_BUNDLE), "--db", str(sigma_db)])
    after = runner.invoke(app, ["stats", "--format", "json", "--db", str(sigma_db)]).output

    assert result.exit_code == EXIT_OK
    assert json.loads(before)["vendors"] == json.loads(after)["vendors"]


def test_build_sigma_null_filters_read_as_is_null_exclusions(sigma_db):
    result = runner.invoke(app, ["guide", "T1218", "--format", "json", "--limit", "500",
                                 "--db", str(sigma_db)])
    exclusions = {(x["field"], x["op"]): x["rules"] for x in json.loads(result.output)["exclusions"]
                  if x["field"] == "process.command_line" and x["op"].endswith("null")}

    assert exclusions == {("process.command_line", "is_null"): 3}


def test_build_sigma_indicator_drilldown_rules_using_it_unnegated_are_its_reach(sigma_db):
    result = runner.invoke(app, ["query", "indicator_drilldown", "--param", "field=process.name",
                                 "--param", "op=eq", "--param", "value=cmd.exe",
                                 "--format", "json", "--db", str(sigma_db)])
    rows = json.loads(result.stdout)
    unnegated = [row for row in rows if not row["negated"]]

    assert len(unnegated) == max(row["reach"] for row in rows) > 50
    assert any(row["exclusion"] for row in unnegated)  # used in a selection and a filter
