"""The one comment the service keeps on an incident: short, specific, kind, never "you".

Rendered as GitHub markdown or Jira wiki markup. A hidden marker lets the service find and
edit its own comment instead of stacking a second one.
"""

from __future__ import annotations

from check.verdict import MISSING, NEEDS_REVIEW, OK, UNCHECKED, Verdict
from connector.base import GITHUB, OUTSIDE, Incident
from nlp.actions import CATEGORY as ACTION_CATEGORY
from nlp.actions import SECTION_RULES, lacks_summary
from nlp.model import Finding
from rules.incident_policy import MAX_POSTMORTEM_REFS, IncidentPolicy

GITHUB_MARKER = "<!-- pmguard:check v1 -->"
# Jira wiki markup has no comments; a trailing, nearly invisible tag does the same job.
JIRA_MARKER = "{color:#ffffff}pmguard-check-v1{color}"


def marker_for(tracker: str) -> str:
    return GITHUB_MARKER if tracker == GITHUB else JIRA_MARKER


def render(
    incident: Incident, verdict: Verdict, policy: IncidentPolicy, details_url: str = ""
) -> str:
    github = incident.ref.tracker == GITHUB
    lines: list[str] = []
    if verdict.status == MISSING:
        lines.append(
            "Thanks for closing this incident. No postmortem is linked yet, and writing one "
            "is how the team keeps what this incident taught."
        )
        lines.append("")
        if github:
            lines.append(
                "Add a line like `Postmortem: #123` (an issue labelled `postmortem`) or a "
                "link to a markdown file to the description or a comment."
            )
        else:
            lines.append(
                "Link an issue of type Postmortem, or a Confluence page, to this incident."
            )
        for ref, reason in verdict.unreadable:
            lines.append(f"- The linked postmortem {_code(ref.locator, github)} could not be "
                         f"read: {reason}")
    elif verdict.status in (NEEDS_REVIEW, OK):
        lines.extend(_review(verdict, policy, github, details_url))
    elif verdict.status == UNCHECKED:
        lines.append(
            "Thanks for the postmortem. It could not be checked automatically, so an incident "
            "manager will read it instead."
        )
    if verdict.status != MISSING:
        if verdict.unchecked:
            lines.append("")
        for pm, reason in verdict.unchecked:
            name = _link(pm.title or pm.url or pm.ref.locator, pm.url, github)
            lines.append(f"{'-' if github else '*'} {name}: {reason}.")
        if verdict.checks:
            checked = ", ".join(_link(c.postmortem.title or c.postmortem.url, c.postmortem.url,
                                      github) for c in verdict.checks)
            lines.append("")
            lines.append(f"Checked: {checked}.")
    if verdict.refused or verdict.not_read:
        lines.append("")
    bullet = "-" if github else "*"
    for ref in verdict.refused:
        # Only the reference as the incident wrote it: nothing of the postmortem was read.
        lines.append(
            f"{bullet} The linked postmortem {_code(ref.locator, github)} was not read: it is "
            f"{OUTSIDE} (this incident's own {'repository' if github else 'project'} and "
            f"the places the service's policy names)."
        )
    if verdict.not_read:
        lines.append(
            f"{bullet} Too many postmortem references; read the first {MAX_POSTMORTEM_REFS}, and "
            f"{verdict.not_read} more were not read."
        )
    lines.append("")
    command = _code(policy.recheck_command, github)
    lines.append(f"Edit the postmortem or comment {command} to check again.")
    lines.append(marker_for(incident.ref.tracker))
    return "\n".join(lines)


def _review(
    verdict: Verdict, policy: IncidentPolicy, github: bool, details_url: str
) -> list[str]:
    """Three parts that never mix: sentences that read as blame (each with its systems
    question), one line for a missing or empty action-items section, and one sentence for
    what the action items lack. Action-item findings are never listed as sentences: a
    missing section has no sentence, and quoting `line 1, "#"` as blame misled readers."""
    bullet = "-" if github else "*"
    blame = [f for f in verdict.open_findings if f.category != ACTION_CATEGORY]
    action_lines: list[str] = []
    several = len(verdict.checks) > 1
    for c in verdict.checks:
        prefix = f"{c.postmortem.title or c.postmortem.url or 'Postmortem'}: " if several else ""
        section = [f for f in c.open_findings if f.rule in SECTION_RULES]
        for f in section:
            action_lines.append(f"{bullet} {prefix}{f.message}")
        if not any(f.rule == "actions.missing-section" for f in section):
            lacks = lacks_summary(c.analysis.action_items)
            if lacks:
                action_lines.append(f"{bullet} {prefix}Action items: {lacks}")
    lines: list[str] = []
    if blame:
        lines.append(
            "Thanks for the postmortem. A few sentences read as if they point at people "
            "rather than at the system; a systems question for each is below."
        )
        lines.append("")
        for f in blame[: policy.max_listed]:
            lines.append(_item(f, github))
        more = len(blame) - policy.max_listed
        if more > 0:
            rest = f"and {more} more"
            lines.append(
                f"- [{rest}]({details_url})" if github and details_url else f"{bullet} {rest}"
            )
    elif verdict.status == OK and not action_lines:
        lines.append(
            "Thanks for the postmortem: it is linked, reads as blameless, and its action "
            "items are in place."
        )
    else:
        lines.append("Thanks for the postmortem. It reads as blameless.")
    if action_lines:
        lines.append("")
        lines.append("What will change because of this incident:")
        lines.extend(action_lines)
    return lines


def _item(f: Finding, github: bool) -> str:
    quote = " ".join(f.text.split())
    if len(quote) > 80:
        quote = quote[:77] + "…"
    where = f"line {f.line}"
    if github:
        return f"- {where}, “{quote}”: {f.suggestion}"
    return f"* {where}, “{quote}”: {f.suggestion}"


def _code(text: str, github: bool) -> str:
    return f"`{text}`" if github else "{{" + text + "}}"


def _link(text: str, url: str, github: bool) -> str:
    if not url:
        return text
    return f"[{text}]({url})" if github else f"[{text}|{url}]"
