"""docs/settings.md names every setting the service reads, so it cannot fall behind."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from rules.incident_policy import POLICY_KEYS, policy_from_mapping
from rules.policy import ActionPolicy
from settings import ENV, GitHubSettings, JiraSettings, Settings

DOC = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}.*?(?=^## |\Z)", DOC, re.M | re.S)
    assert match, f"docs/settings.md has no section {title!r}"
    return match.group(0)


def named(text: str) -> set[str]:
    """Setting names in the first column of the section's tables."""
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, re.M))


@pytest.mark.parametrize(("title", "cls"), [
    ("Service", Settings), ("`github:`", GitHubSettings), ("`jira:`", JiraSettings),
])
def test_every_setting_is_in_its_section(title: str, cls: type) -> None:
    assert {f.name for f in fields(cls)} == named(section(title))


def test_every_environment_variable_is_listed() -> None:
    missing = [var for var in ENV if f"`{var}`" not in DOC]
    assert not missing


def test_every_policy_key_is_listed() -> None:
    policy = section("`policy:`")
    assert named(policy) == POLICY_KEYS | {f.name for f in fields(ActionPolicy)}


def test_the_example_policy_is_valid() -> None:
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", DOC, re.S).group(1))
    policy = policy_from_mapping(example["policy"], "docs/settings.md")
    assert policy.enforcement == "reopen" and policy.actions.require_owner
