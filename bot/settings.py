"""Settings: a TOML file overridden by `WIROBOT_<SECTION>__<KEY>` environment variables.

Built once in `main()` and passed down; nothing here is a module-level global.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "WIROBOT_"
DEFAULT_CONFIG_FILE = Path("config.toml")


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it in one line."""


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***: what messages and logs may show."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "a postgresql:// URL (unreadable)"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _secret_text(v: Any) -> Any:
    """Blank is unset; spaces around are a copy-and-paste slip; anything but printable ASCII
    cannot go in an HTTP header. The message never repeats the secret."""
    if not isinstance(v, str):
        return v
    v = v.strip()
    if not v:
        return None
    if not all(33 <= ord(c) < 127 for c in v):
        raise ValueError(
            "holds characters no token or key has (spaces, accents, control or non-UTF-8 "
            "bytes); copy it again"
        )
    return v


class DiscordSettings(_Section):
    token: SecretStr | None = None
    #: Sync commands to these guilds at once instead of globally (global sync can take an hour).
    guild_ids: list[int] = Field(default_factory=list)
    #: Minimum seconds between two edits of one status message (Discord rate limits).
    status_edit_interval: float = Field(default=1.5, ge=0.2, le=60)
    #: Sharding: how many shards the bot has in all, and which of them this process runs
    #: (empty: all of them). With neither, one process runs the count Discord recommends.
    shard_count: int | None = Field(default=None, ge=1, le=100_000)
    shard_ids: list[int] = Field(default_factory=list)
    #: Discord's REST API. Point it at a REST proxy (such as nirn-proxy) that many processes
    #: share, so one place keeps to Discord's rate limits; the gateway's address then comes
    #: from that proxy's `/gateway/bot`, as it does from Discord.
    api_base_url: str = "https://discord.com/api/v10"

    @field_validator("api_base_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        v = v.strip()
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("token", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return _secret_text(v)

    @field_validator("shard_ids")
    @classmethod
    def _shard_ids(cls, v: list[int], info: ValidationInfo) -> list[int]:
        if not v:
            return v
        count = info.data.get("shard_count")
        if count is None:
            raise ValueError("needs discord.shard_count (WIROBOT_DISCORD__SHARD_COUNT) too")
        wrong = [i for i in v if not 0 <= i < count]
        if wrong:
            raise ValueError(f"shard {wrong[0]} is not one of 0..{count - 1} (shard_count {count})")
        if len(set(v)) != len(v):
            raise ValueError("names a shard twice")
        return sorted(v)


class WiroSettings(_Section):
    api_key: SecretStr | None = None
    #: Empty or absent: the project is in key-only mode.
    api_secret: SecretStr | None = None
    base_url: str = "https://api.wiro.ai/v1"
    request_timeout: float = Field(default=30.0, gt=0, le=300)
    #: Wiro's WebSocket for live progress; empty turns it off (polling only).
    socket_url: str = "wss://socket.wiro.ai/v1"
    #: Seconds the socket may stay silent before a job falls back to polling.
    socket_idle_timeout: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("api_key", "api_secret", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return _secret_text(v)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("socket_url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        v = v.strip()
        if v and not v.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://, or be empty to turn it off")
        return v


class DatabaseSettings(_Section):
    path: Path = Path("data/wirobot.db")
    #: A postgresql:// URL selects PostgreSQL (several processes may share it); unset,
    #: SQLite at `path`. Secret: it may hold a password, shown masked (`shown_url`).
    url: SecretStr | None = None
    #: Connections one process keeps open to PostgreSQL.
    pool_size: int = Field(default=10, ge=1, le=1000)
    #: Where downloaded images are kept; defaults to an `outputs` folder beside the database.
    outputs_dir: Path | None = None
    #: Retention of downloaded images: remove those of jobs older than this many days, and
    #: the oldest while all of them take more than this many megabytes. 0: no limit.
    outputs_keep_days: float = Field(default=0, ge=0)
    outputs_max_mb: float = Field(default=0, ge=0)

    @field_validator("url", mode="before")
    @classmethod
    def _postgres_url(cls, v: Any) -> Any:
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if not isinstance(v, str):
            return v
        v = v.strip()
        if not v:
            return None
        if not v.startswith(("postgresql://", "postgres://")):
            # The value is not repeated: it may hold a password.
            raise ValueError(
                "must be a postgresql:// URL, like postgresql://user:password@host:5432/wirobot"
                " (leave it unset for SQLite at database.path)"
            )
        return v

    @property
    def shown_url(self) -> str | None:
        """The URL with its password masked: what messages and logs show."""
        if self.url is None:
            return None
        return mask_url(self.url.get_secret_value())

    @property
    def outputs_path(self) -> Path:
        return self.outputs_dir or self.path.parent / "outputs"


class ModelSettings(_Section):
    #: The model used when neither the command nor the server names one.
    default: str = "wavymulder/portraitplus"
    #: More Wiro models by slug ("owner/project"); their inputs are read through Tool/Detail.
    extra: list[str] = Field(default_factory=list)

    @field_validator("extra")
    @classmethod
    def _slugs(cls, v: list[str]) -> list[str]:
        for slug in v:
            if slug.count("/") != 1 or not all(slug.split("/")):
                raise ValueError(f"'{slug}' is not a model slug like owner/project")
        return v


class JobSettings(_Section):
    #: Jobs at Wiro at once, over all servers.
    max_concurrent: int = Field(default=8, ge=1, le=10_000)
    #: Jobs at Wiro at once for one server and for one member; more wait locally.
    max_concurrent_per_guild: int = Field(default=4, ge=1, le=10_000)
    max_concurrent_per_user: int = Field(default=2, ge=1, le=10_000)
    #: Jobs one member may start per day (0: no limit). Servers can lower it.
    max_jobs_per_user_per_day: int = Field(default=0, ge=0)
    #: Seconds a job may take at Wiro before it is killed and marked timed out.
    deadline_seconds: float = Field(default=600, gt=0)
    #: Largest image the bot downloads, in bytes.
    max_download_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    #: Polling: the densest and sparsest interval between two Task/Detail calls of one task.
    poll_min_interval: float = Field(default=1.0, gt=0)
    poll_max_interval: float = Field(default=10, gt=0)
    #: Seconds a task may show task_error without ending before the job gives up on it (and
    #: stops the task at Wiro): Wiro's SDKs treat task_error as a passing state.
    task_error_grace_seconds: float = Field(default=60, gt=0)
    #: Seconds a process's claim on a job holds without being renewed; another process on
    #: the same database takes over a dead process's jobs after it.
    claim_lease_seconds: float = Field(default=60, ge=1)
    #: Processes sharing one database: seconds before a job the others' jobs at Wiro held
    #: back is tried again with no notice that a slot freed (PostgreSQL's notices wake it
    #: at once; this is their safety net).
    shared_recheck_seconds: float = Field(default=5, gt=0, le=600)
    #: Task/Detail calls per second over all tasks, at most (bursts up to as many).
    detail_calls_per_second: float = Field(default=10, gt=0, le=1000)


class WebSettings(_Section):
    #: Where the web server (health, metrics, gallery) listens; the Docker image uses 0.0.0.0.
    host: str = "127.0.0.1"
    #: 0 turns the web server off.
    port: int = Field(default=8080, ge=0, le=65535)
    #: How members reach the server, for the links /gallery hands out; defaults to host:port.
    public_url: str | None = None

    @field_validator("public_url", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v is not None else None


class LoggingSettings(_Section):
    level: str = "INFO"
    #: "text": one line per event for people; "json": one JSON object per line for collectors.
    format: Literal["text", "json"] = "text"

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    wiro: WiroSettings = Field(default_factory=WiroSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file; no .env or secrets-dir magic.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    def require_wiro_key(self) -> SecretStr:
        if self.wiro.api_key is None:
            raise ConfigError(
                "wiro.api_key is not set (set WIROBOT_WIRO__API_KEY or [wiro] api_key)"
            )
        return self.wiro.api_key

    def require_discord_token(self) -> SecretStr:
        if self.discord.token is None:
            raise ConfigError(
                "discord.token is not set (set WIROBOT_DISCORD__TOKEN or [discord] token)"
            )
        return self.discord.token


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The TOML file to read: `--config`, else `WIROBOT_CONFIG`, else ./config.toml if present."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read settings, raising ConfigError with one line naming the bad setting."""
    toml_file = config_path(path)
    if toml_file is not None and not toml_file.is_file():
        raise ConfigError(f"config file {toml_file} does not exist")
    _check_json_environment(os.environ)

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=toml_file)

    try:
        settings: Settings = _FromFile(**overrides)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    except (ValueError, OSError) as exc:  # unreadable or malformed TOML
        where = f"config file {toml_file}" if toml_file else "settings"
        raise ConfigError(f"{where}: {exc}") from None
    if settings.jobs.poll_min_interval > settings.jobs.poll_max_interval:
        raise ConfigError("jobs.poll_min_interval must not exceed jobs.poll_max_interval")
    return settings


#: How a list setting is written in an environment variable (JSON), by setting.
_JSON_EXAMPLES = {
    "discord.guild_ids": "[123456789012345678, 234567890123456789]",
    "models.extra": '["owner/project", "other-owner/other-project"]',
    "discord.shard_ids": "[0, 1]",
}


def _json_fields() -> dict[str, str]:
    """`WIROBOT_SECTION__KEY` -> `section.key` for the settings whose value is a list."""
    found = {}
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, field in model.model_fields.items():
            if typing.get_origin(field.annotation) in (list, dict):
                found[f"{ENV_PREFIX}{section}__{key}".upper()] = f"{section}.{key}"
    return found


def _check_json_environment(environ: Mapping[str, str]) -> None:
    """A list setting given in the environment must be JSON: say so, naming the variable,
    rather than pydantic-settings' "error parsing value for field" without one."""
    wanted = _json_fields()
    for name, value in environ.items():
        setting = wanted.get(name.upper())
        if setting is None:
            continue
        try:
            json.loads(value)
        except ValueError:
            shown = value if len(value) <= 40 else value[:39] + "…"
            raise ConfigError(
                f"setting {setting} ({name.upper()}): must be a JSON list, like "
                f"{name.upper()}='{_JSON_EXAMPLES.get(setting, '[...]')}' (got '{shown}')"
            ) from None


def _one_line(exc: ValidationError) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    where = ".".join(loc[:2]) or "settings"
    where += "".join(f"[{part}]" for part in loc[2:])  # an item of a list: guild_ids[0]
    env_name = ENV_PREFIX + "__".join(loc[:2]).upper()
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "is not a known setting"
    section_key = ".".join(str(part) for part in first["loc"][:2])
    if first["type"] == "list_type" and section_key in _JSON_EXAMPLES:
        message += f", like {env_name}='{_JSON_EXAMPLES[section_key]}'"
    more = len(exc.errors()) - 1
    tail = f" (and {more} more)" if more else ""
    return f"setting {where} ({env_name}): {message}{tail}"
