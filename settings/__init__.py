"""Service settings: a YAML file (`pmguard.yml`, or the path in PMGUARD_CONFIG) overlaid by
PMGUARD_* environment variables. Secrets may also come from a file: PMGUARD_X_FILE, or
`x_file:` in YAML. A missing or malformed setting is an error that names it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from settings.safe_yaml import YamlRefused, load_yaml

DEFAULT_CONFIG = "pmguard.yml"
MAX_CONFIG_CHARS = 1024 * 1024  # far beyond any real settings file
MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub's own payload cap


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class GitHubSettings:
    api_url: str = "https://api.github.com"
    webhook_secret: str = ""
    token: str = ""
    app_id: int | None = None
    private_key: str = ""
    bot_login: str = ""
    incident_labels: tuple[str, ...] = ("incident",)
    repositories: tuple[str, ...] = ()  # empty: every repository the credentials reach
    exempt_state_reasons: tuple[str, ...] = ("not_planned",)
    postmortem_label: str = "postmortem"

    @property
    def configured(self) -> bool:
        return bool(self.token or (self.app_id and self.private_key))


@dataclass(frozen=True)
class JiraSettings:
    url: str = ""
    webhook_secret: str = ""
    email: str = ""
    token: str = ""
    pat: str = ""
    projects: tuple[str, ...] = ()  # empty: every project
    issue_types: tuple[str, ...] = ("Incident",)
    postmortem_issue_types: tuple[str, ...] = ("Postmortem", "Post-incident review")
    link_types: tuple[str, ...] = ()
    url_field: str = ""
    severity_field: str = ""
    reopen_transition: str = "Reopen"
    bot_account: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.url and ((self.email and self.token) or self.pat))


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str = ""
    redis_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Proxies in front of the web app that set X-Forwarded-For/-Proto (0: none). The
    # client address the login limit counts by is taken that many hops back.
    trusted_proxies: int = 0
    secret_key: str = ""
    workers: int = 2
    max_body_bytes: int = MAX_BODY_BYTES
    log_format: str = "text"  # text | json
    max_attempts: int = 8  # tracker retries before a job is marked failed
    tracker_timeout: int = 15  # seconds per tracker API call; a timeout is retried
    # Postmortems are analysed in this many worker processes, never in the web's or the
    # queue worker's own (spaCy holds the GIL); a check past its budget is stopped and
    # reported as "took too long to check".
    analysis_processes: int = 2
    analysis_timeout: float = 60.0  # seconds of analysis per check and per /api/v1/lint call
    # The workers reconcile on their own this often (0: never), looking back this far:
    # GitHub never redelivers a failed webhook, and a missed one would go unchecked.
    reconcile_every_hours: int = 24
    # What a 202 promises: "power-cut" (fsynced before the answer) or "process-crash"
    # (survives a killed process, not a power cut or kernel crash; several times cheaper
    # per delivery, and the scheduled reconcile finds an incident whose delivery was lost).
    intake_durability: str = "power-cut"
    reconcile_window_hours: int = 72
    policy: dict = field(default_factory=dict)  # the service-wide postmortem policy
    github: GitHubSettings = field(default_factory=GitHubSettings)
    jira: JiraSettings = field(default_factory=JiraSettings)
    jira_sites: tuple[JiraSettings, ...] = ()  # more Jira sites beside `jira`

    @property
    def jiras(self) -> tuple[JiraSettings, ...]:
        """Every configured Jira site, the `jira` section first."""
        return tuple(j for j in (self.jira, *self.jira_sites) if j.url)

    def jira_for(self, site: str) -> JiraSettings | None:
        site = site.rstrip("/")
        return next((j for j in self.jiras if j.url.rstrip("/") == site), None)

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'pmguard.db').resolve()}"


# Environment variable -> (section, key). Sections: "" (top level), "github", "jira".
ENV = {
    "PMGUARD_DATA_DIR": ("", "data_dir"),
    "PMGUARD_DATABASE_URL": ("", "database_url"),
    "PMGUARD_REDIS_URL": ("", "redis_url"),
    "PMGUARD_HOST": ("", "host"),
    "PMGUARD_PORT": ("", "port"),
    "PMGUARD_TRUSTED_PROXIES": ("", "trusted_proxies"),
    "PMGUARD_SECRET_KEY": ("", "secret_key"),
    "PMGUARD_WORKERS": ("", "workers"),
    "PMGUARD_LOG_FORMAT": ("", "log_format"),
    "PMGUARD_MAX_ATTEMPTS": ("", "max_attempts"),
    "PMGUARD_TRACKER_TIMEOUT": ("", "tracker_timeout"),
    "PMGUARD_ANALYSIS_PROCESSES": ("", "analysis_processes"),
    "PMGUARD_ANALYSIS_TIMEOUT": ("", "analysis_timeout"),
    "PMGUARD_RECONCILE_EVERY_HOURS": ("", "reconcile_every_hours"),
    "PMGUARD_INTAKE_DURABILITY": ("", "intake_durability"),
    "PMGUARD_RECONCILE_WINDOW_HOURS": ("", "reconcile_window_hours"),
    "PMGUARD_GITHUB_API_URL": ("github", "api_url"),
    "PMGUARD_GITHUB_WEBHOOK_SECRET": ("github", "webhook_secret"),
    "PMGUARD_GITHUB_TOKEN": ("github", "token"),
    "PMGUARD_GITHUB_APP_ID": ("github", "app_id"),
    "PMGUARD_GITHUB_PRIVATE_KEY": ("github", "private_key"),
    "PMGUARD_GITHUB_BOT_LOGIN": ("github", "bot_login"),
    "PMGUARD_JIRA_URL": ("jira", "url"),
    "PMGUARD_JIRA_WEBHOOK_SECRET": ("jira", "webhook_secret"),
    "PMGUARD_JIRA_EMAIL": ("jira", "email"),
    "PMGUARD_JIRA_TOKEN": ("jira", "token"),
    "PMGUARD_JIRA_PAT": ("jira", "pat"),
}
SECRETS = {"webhook_secret", "token", "private_key", "pat", "secret_key"}


def load_settings(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    config = path or env.get("PMGUARD_CONFIG")
    if config or Path(DEFAULT_CONFIG).is_file():
        raw = _read_yaml(Path(config or DEFAULT_CONFIG), required=bool(config))
    for var, (section, key) in ENV.items():
        target = raw.setdefault(section, {}) if section else raw
        if not isinstance(target, dict):
            raise SettingsError(f"setting '{section}' must be a mapping")
        if var in env and env[var] != "":
            target[key] = env[var]
        elif f"{var}_FILE" in env:
            target[key] = _read_secret(env[f"{var}_FILE"], f"{var}_FILE")
    return _build(raw)


def _read_yaml(path: Path, *, required: bool) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise SettingsError(f"config file {path} not found (PMGUARD_CONFIG)") from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path} cannot be read: {exc}") from None
    if len(text) > MAX_CONFIG_CHARS:
        raise SettingsError(f"config file {path}: over {MAX_CONFIG_CHARS} characters")
    try:
        data = load_yaml(text, f"config file {path}") or {}
    except YamlRefused as exc:
        raise SettingsError(str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SettingsError(f"config file {path}: invalid YAML{where}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path}: expected a mapping of settings")
    return data


def _read_secret(path: str, name: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"setting {name}: cannot read {path} ({exc.strerror})") from None


def _build(raw: dict) -> Settings:
    top = {k: v for k, v in raw.items() if k not in ("github", "jira", "jira_sites")}
    github = _section(GitHubSettings, raw.get("github") or {}, "github")
    jira = _section(JiraSettings, raw.get("jira") or {}, "jira")
    sites = raw.get("jira_sites") or []
    if not isinstance(sites, list):
        raise SettingsError("setting 'jira_sites' must be a list of Jira site sections")
    jira_sites = tuple(
        _section(JiraSettings, site, f"jira_sites[{i}]") for i, site in enumerate(sites)
    )
    settings = _section(Settings, top, "")
    settings = replace(settings, github=github, jira=jira, jira_sites=jira_sites)
    if settings.log_format not in ("text", "json"):
        raise SettingsError("setting 'log_format' must be 'text' or 'json'")
    if settings.github.app_id and not settings.github.private_key:
        raise SettingsError(
            "setting 'github.private_key' is required with 'github.app_id' "
            "(PMGUARD_GITHUB_PRIVATE_KEY_FILE)"
        )
    for name, site in (("jira", settings.jira),
                       *((f"jira_sites[{i}]", s) for i, s in enumerate(settings.jira_sites))):
        if site.url and not site.configured:
            raise SettingsError(
                f"setting '{name}.url' needs '{name}.email' + '{name}.token' (Cloud) or "
                f"'{name}.pat' (Data Center)"
            )
        if name != "jira" and not site.url:
            raise SettingsError(f"setting '{name}.url' is required")
    urls = [j.url.rstrip("/") for j in settings.jiras]
    if len(urls) != len(set(urls)):
        raise SettingsError("setting 'jira_sites': each Jira site must have its own url")
    if settings.intake_durability not in ("power-cut", "process-crash"):
        raise SettingsError(
            "setting 'intake_durability' must be 'power-cut' or 'process-crash'")
    if settings.analysis_processes < 1:
        raise SettingsError("setting 'analysis_processes' must be 1 or more")
    if not settings.analysis_timeout > 0:
        raise SettingsError("setting 'analysis_timeout' must be more than 0 seconds")
    if settings.trusted_proxies < 0:
        raise SettingsError("setting 'trusted_proxies' must be 0 (no proxy) or more")
    if settings.reconcile_every_hours < 0:
        raise SettingsError("setting 'reconcile_every_hours' must be 0 (off) or more")
    if settings.reconcile_every_hours and \
            settings.reconcile_window_hours < settings.reconcile_every_hours:
        raise SettingsError(
            "setting 'reconcile_window_hours' must be at least 'reconcile_every_hours' "
            f"({settings.reconcile_every_hours}), or incidents closed between two "
            "reconciles would never be looked at"
        )
    for name in ("database_url", "redis_url"):
        value = getattr(settings, name)
        if value and "://" not in value:
            raise SettingsError(f"setting '{name}' must be a URL like scheme://…")
    return settings


def _section(cls: type, raw: dict, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise SettingsError(f"setting '{prefix}' must be a mapping")
    known = {f.name: f for f in fields(cls) if f.name not in ("github", "jira", "jira_sites")}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}.{key}" if prefix else key
        if key.endswith("_file") and key[:-5] in known and key[:-5] in SECRETS:
            values[key[:-5]] = _read_secret(str(value), name)
            continue
        if key not in known:
            raise SettingsError(f"unknown setting '{name}'")
        values[key] = _coerce(known[key], value, name)
    return cls(**values)


def _coerce(f: Any, value: Any, name: str) -> Any:
    kind = str(f.type)
    try:
        if kind.startswith("tuple"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple):
                raise TypeError
            return tuple(str(v) for v in value)
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise TypeError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind == "Path":
            return Path(str(value)).expanduser()
        if kind == "dict":
            if not isinstance(value, dict):
                raise TypeError
            return value
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting '{name}' has an invalid value {value!r}") from None


def secret_key(settings: Settings) -> str:
    """The Flask secret: configured, or generated once and kept in the data directory."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / "secret_key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key)
        return key
