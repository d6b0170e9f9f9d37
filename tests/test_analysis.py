"""analyse() end to end: every finding points at exactly its text in the source, in every
input format; suppression, roster, quotes and action items come through."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp.analysis import analyse

BLAME = [
    "Anneliese forgot to drain the node.",
    "The on-call engineer should have checked the replica lag.",
    "Root cause: human error during the failover.",
    "@okafor rebooted the wrong rack by mistake.",
    "It was a careless change by the DBA.",
]
NEUTRAL = [
    "The deploy script failed to start.",
    "Latency rose at 14:05 and recovered at 14:20.",
    "We rolled back the release.",
]
WRAPPERS = [
    "{}",
    "**{}**",
    "- {}",
    "> {}",
    "1. {}",
    "| {} | @sre |",
    "# {}",
    "_{}_",
]


def offset_of(source: str, line: int, column: int) -> int:
    starts = [0]
    for i, ch in enumerate(source):
        if ch == "\n":
            starts.append(i + 1)
    return starts[line - 1] + column - 1


def check_spans(source: str, findings) -> None:
    for f in findings:
        assert source[f.start : f.end] == f.text
        assert offset_of(source, f.line, f.column) == f.start
        assert offset_of(source, f.end_line, f.end_column) == f.end


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(BLAME + NEUTRAL), st.sampled_from(WRAPPERS)),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["\n", "\n\n", "\r\n\r\n"]),
)
def test_every_finding_span_is_exactly_its_text(parts, newline) -> None:
    lines = []
    for sentence, wrapper in parts:
        if wrapper.startswith("|"):
            lines.append("| what | owner |" + newline.rstrip("\r\n")[:0])
            lines.append("|---|---|")
        lines.append(wrapper.format(sentence))
    source = newline.join(lines) + newline
    analysis = analyse(source, model="blank")
    check_spans(source, analysis.findings)
    # Every flag sits in a blaming sentence (a sentence may carry more than one problem).
    blamed = [s for s, _ in parts if s in BLAME]
    for finding in analysis.findings:
        if finding.category != "action-items":
            assert any(" ".join(finding.text.split()) in s for s in blamed), finding


def test_findings_point_into_jira_markup(model: str) -> None:
    source = (
        "h2. What happened\n\n*Anneliese* forgot to drain the node.\n\n"
        "{code}\nforgot to\n{code}\n"
    )
    analysis = analyse(source, fmt="jira", model=model)
    [finding] = [f for f in analysis.findings if f.category != "action-items"]
    assert finding.text == "forgot" or finding.text.startswith("forgot")
    check_spans(source, analysis.findings)


def test_findings_point_into_adf_json(model: str) -> None:
    doc = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "Root cause: "},
                                                {"type": "text", "text": "human error."}]},
            {"type": "codeBlock", "content": [{"type": "text", "text": "human error"}]},
        ],
    }
    source = json.dumps(doc, indent=2)
    analysis = analyse(source, fmt="adf", model=model)
    blame = [f for f in analysis.findings if f.category != "action-items"]
    assert [f.rule for f in blame] == ["blame.human-error"]
    check_spans(source, analysis.findings)


def test_code_is_never_analysed(model: str) -> None:
    source = "Logs:\n\n```\nSam forgot to drain the node.\n```\n\nThe log said `human error`.\n"
    blame = [f for f in analyse(source, model=model).findings if f.category != "action-items"]
    assert blame == []


def test_suppression_is_reported_not_dropped(model: str) -> None:
    source = (
        "<!-- pmguard-disable-next-line blame.human-error -- quoting the vendor -->\n"
        "Root cause: human error during the failover.\n\n"
        "Root cause: human error during the restore.\n"
    )
    findings = [f for f in analyse(source, model=model).findings if f.rule == "blame.human-error"]
    assert [(f.line, f.suppressed) for f in findings] == [(2, True), (4, False)]
    assert findings[0].justification == "quoting the vendor"


def test_roster_names_people_the_model_does_not_know(model: str) -> None:
    source = "zqxv forgot to drain the node.\n"
    assert not [f for f in analyse(source, model=model).findings if f.rule == "blame.omission"]
    found = analyse(source, model=model, people=["Zqxv Smith", "@zqxv"]).findings
    assert [f.rule for f in found if f.rule == "blame.omission"] == ["blame.omission"]


def test_quoted_testimony_is_info(model: str) -> None:
    source = "> The operator forgot to drain the node.\n"
    [finding] = [f for f in analyse(source, model=model).findings if f.rule == "blame.omission"]
    assert finding.severity == "info"
    none = analyse(source, model=model, include_blockquotes=False).findings
    assert not [f for f in none if f.rule == "blame.omission"]


def test_person_remediation_in_action_items_is_an_action_item_finding(model: str) -> None:
    source = (
        "# Incident\n\nThe cache expired early.\n\n## Action items\n\n"
        "- Remind engineers to double-check the region before deploying (#12)\n"
        "- Add a region confirmation prompt to the deploy CLI (#13)\n"
    )
    analysis = analyse(source, model=model)
    [finding] = [f for f in analysis.findings if f.rule == "actions.person-remediation"]
    assert finding.category == "action-items" and finding.line == 7
    assert len(analysis.action_items) == 2


def test_items_that_ask_people_to_change_are_marked(model: str) -> None:
    # Constructions, not phrases: someone sent to training, an instruction verb whose
    # object is a person or role, "must be careful"; under a bold label the scope holds too.
    source = (
        "# Incident\n\nKai attended the alerting training last year.\n\n"
        "**What we're doing about it**\n\n"
        "- Kai to attend alerting training\n"
        "- Coach the engineer who ran the migration\n"
        "- Operators must be careful when editing route tables\n"
        "- Add a region check to the deploy checklist (#13)\n"
    )
    analysis = analyse(source, model=model)
    flagged = [f for f in analysis.findings if f.rule.startswith("actions.person-remediation")]
    assert sorted(f.line for f in flagged) == [7, 8, 9]
    assert all(f.category == "action-items" for f in flagged)
    assert [i.asks_people for i in analysis.action_items] == [True, True, True, False]
    assert analysis.action_items[0].owner == "Kai"
    assert analysis.action_items[3].lesson_home == "deploy checklist"
    assert analysis.action_items[0].to_dict()["asks_people"] is True


def test_missing_action_items_are_reported(model: str) -> None:
    analysis = analyse("# Incident\n\nThe cache expired early.\n", model=model)
    assert "actions.missing-section" in {f.rule for f in analysis.findings}


def test_every_finding_has_a_suggestion(model: str) -> None:
    source = "\n\n".join(BLAME) + "\n"
    for f in analyse(source, model=model).findings:
        assert f.suggestion.strip()
        assert "you" not in f.suggestion.lower().split()


def test_analyse_is_safe_from_several_threads(model: str) -> None:
    source = "\n\n".join(BLAME + NEUTRAL) + "\n"
    expected = [(f.rule, f.start) for f in analyse(source, model=model).findings]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: analyse(source, model=model), range(12)))
    for result in results:
        assert [(f.rule, f.start) for f in result.findings] == expected
