"""Settings from YAML and PMGUARD_* variables; secrets from files; errors name the setting."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from settings import SettingsError, load_settings, secret_key
from tests.yaml_bombs import billion_laughs


def test_defaults_need_nothing(tmp_path: Path) -> None:
    s = load_settings(env={"PMGUARD_DATA_DIR": str(tmp_path)})
    assert s.database.startswith("sqlite:///") and s.database.endswith("pmguard.db")
    assert not s.redis_url and s.github.api_url == "https://api.github.com"
    assert s.github.incident_labels == ("incident",)


def test_environment_overrides_yaml(tmp_path: Path) -> None:
    config = tmp_path / "pmguard.yml"
    config.write_text(
        "port: 9000\ngithub:\n  token: from-yaml\n  incident_labels: [incident, outage]\n"
        "jira:\n  url: https://jira.example\n  pat: p\n  projects: [OPS]\n"
    )
    s = load_settings(config, env={"PMGUARD_GITHUB_TOKEN": "from-env", "PMGUARD_PORT": "9001"})
    assert s.port == 9001 and s.github.token == "from-env"
    assert s.github.incident_labels == ("incident", "outage")
    assert s.jira.projects == ("OPS",) and s.jira.configured


def test_secrets_from_files(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN KEY-----\nabc\n-----END KEY-----\n")
    secret = tmp_path / "hook"
    secret.write_text("s3cret\n")
    s = load_settings(
        env={
            "PMGUARD_GITHUB_APP_ID": "42",
            "PMGUARD_GITHUB_PRIVATE_KEY_FILE": str(key),
            "PMGUARD_GITHUB_WEBHOOK_SECRET_FILE": str(secret),
        }
    )
    assert s.github.app_id == 42 and s.github.private_key.startswith("-----BEGIN")
    assert s.github.webhook_secret == "s3cret" and s.github.configured


@pytest.mark.parametrize(
    ("yaml_text", "env", "message"),
    [
        ("prot: 1\n", {}, "unknown setting 'prot'"),
        ("github:\n  tokn: x\n", {}, "unknown setting 'github.tokn'"),
        ("port: eighty\n", {}, "setting 'port' has an invalid value"),
        ("", {"PMGUARD_GITHUB_APP_ID": "7"}, "github.private_key"),
        ("jira:\n  url: https://j\n", {}, "jira.email"),
        ("", {"PMGUARD_DATABASE_URL": "pmguard.db"}, "database_url"),
        ("", {"PMGUARD_GITHUB_TOKEN_FILE": "/nonexistent/token"}, "PMGUARD_GITHUB_TOKEN_FILE"),
        ("port: [1\n", {}, "invalid YAML at line"),
    ],
)
def test_errors_name_the_setting(tmp_path: Path, yaml_text: str, env: dict, message: str) -> None:
    config = tmp_path / "pmguard.yml"
    config.write_text(yaml_text)
    with pytest.raises(SettingsError, match=message.replace(".", r"\.").replace("[", r"\[")):
        load_settings(config, env=env)


def test_missing_config_file_named_by_env_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(env={"PMGUARD_CONFIG": str(tmp_path / "nope.yml")})


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    s = load_settings(env={"PMGUARD_DATA_DIR": str(tmp_path)})
    first = secret_key(s)
    assert len(first) == 64 and secret_key(s) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_the_sample_configuration_loads(tmp_path: Path) -> None:
    from rules.incident_policy import policy_from_mapping

    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    text = (Path(__file__).resolve().parents[1] / "examples" / "pmguard.yml").read_text()
    for name in ("pmguard-app.pem", "pmguard-github-hook", "pmguard-jira-token",
                 "pmguard-jira-hook"):
        (secrets_dir / name).write_text("x")
    config = tmp_path / "pmguard.yml"
    config.write_text(text.replace("/run/secrets", str(secrets_dir)))
    s = load_settings(config, env={})
    assert s.github.app_id == 123456 and s.jira.configured and s.workers == 4
    assert policy_from_mapping(s.policy, "sample").severities == ("sev1", "sev2")


def test_scheduled_reconcile_settings() -> None:
    defaults = load_settings(env={})
    assert (defaults.reconcile_every_hours, defaults.reconcile_window_hours) == (24, 72)
    off = load_settings(env={"PMGUARD_RECONCILE_EVERY_HOURS": "0"})
    assert off.reconcile_every_hours == 0
    with pytest.raises(SettingsError, match="reconcile_window_hours.*at least"):
        load_settings(env={"PMGUARD_RECONCILE_EVERY_HOURS": "48",
                           "PMGUARD_RECONCILE_WINDOW_HOURS": "24"})
    with pytest.raises(SettingsError, match="reconcile_every_hours"):
        load_settings(env={"PMGUARD_RECONCILE_EVERY_HOURS": "-1"})


def test_intake_durability_setting() -> None:
    assert load_settings(env={}).intake_durability == "power-cut"
    assert load_settings(env={"PMGUARD_INTAKE_DURABILITY": "process-crash"}
                         ).intake_durability == "process-crash"
    with pytest.raises(SettingsError, match="intake_durability"):
        load_settings(env={"PMGUARD_INTAKE_DURABILITY": "fast"})


def test_a_settings_file_with_aliases_is_refused_fast(tmp_path: Path) -> None:
    config = tmp_path / "pmguard.yml"
    config.write_text(billion_laughs("jira_sites"))
    started = time.perf_counter()
    with pytest.raises(SettingsError) as err:
        load_settings(config, env={})
    assert str(err.value) == f"YAML aliases (*a) are not allowed in config file {config}, line 3"
    assert time.perf_counter() - started < 0.5
