"""The one typed settings object: config.yml defaults, TECHBOT_* environment overrides."""

from __future__ import annotations

import json
import os
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dialogues.hours import BusinessHours

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yml"
PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "placeholder", "secret", "token", "xxx"}
# (section, key): these may only come from the environment, never from a committed file.
SECRET_KEYS = {("telegram", "token"), ("telegram", "webhook_secret"), ("api", "token"),
               ("handoff", "webhook_secret")}


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable to set."""


class DatabaseSettings(BaseModel):
    url: str = ""
    pool_size: int = Field(10, ge=1)
    echo: bool = False


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token: SecretStr = SecretStr("")


class TelegramSettings(BaseModel):
    token: SecretStr = SecretStr("")
    mode: Literal["polling", "webhook"] = "polling"
    base_url: str = ""
    bot_username: str = "techbot_demo_bot"
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    live_location: bool = False
    poll_interval_seconds: float = Field(0.0, ge=0)  # Telegram long-polls; emulators do not
    # The bot's messages a second, every replica's together; 0: unpaced. Telegram allows
    # about 30: the margin absorbs the jitter of threads, sleeps and requests across replicas.
    api_requests_per_second: float = Field(25, ge=0)
    per_chat_seconds: float = Field(1.0, ge=0)  # between two messages to one chat
    link_token_ttl_hours: int = Field(72, ge=1)
    identify_max_failures: int = Field(5, ge=1)


class NluSettings(BaseModel):
    url: str = ""  # one server: the same as urls with one element
    urls: Annotated[list[str], NoDecode] = []  # the client balances among them
    timeout_seconds: float = Field(2.0, gt=0)
    fallback_threshold: float = Field(0.5, ge=0, le=1)
    local_port: int = Field(5005, ge=1, le=65535)
    in_flight_per_server: int = Field(2, ge=1, le=64)

    @field_validator("urls", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        # From the environment: a JSON list or comma-separated URLs.
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @model_validator(mode="after")
    def _one_way(self) -> NluSettings:
        if self.url and self.urls:
            raise ValueError("set nlu.url (TECHBOT_NLU__URL) or nlu.urls (TECHBOT_NLU__URLS), "
                             "not both")
        return self

    @property
    def server_urls(self) -> list[str]:
        """Return the configured servers' URLs; empty: local servers are started."""
        return self.urls or ([self.url] if self.url else [])


class SchedulerSettings(BaseModel):
    tick_seconds: float = Field(30, gt=0)


class RulesSettings(BaseModel):
    reschedule_cutoff_hours: float = Field(2, ge=0)
    max_moves_per_order: int = Field(3, ge=0)
    offer_slots: int = Field(4, ge=3, le=5)
    offer_horizon_days: int = Field(14, ge=1)
    offer_validity_minutes: int = Field(30, ge=1)
    conversation_idle_hours: float = Field(6, gt=0)


class PushSettings(BaseModel):
    reminder_local_time: time = time(18, 0)
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    eta_near_minutes: int = Field(20, ge=1)
    delay_threshold_minutes: int = Field(20, ge=1)
    delay_min_interval_minutes: int = Field(30, ge=0)
    narrowed_ratio: float = Field(0.5, gt=0, le=1)
    delay_probability_near: float = Field(0.5, ge=0.5, lt=1)
    delay_probability_far: float = Field(0.9, ge=0.5, lt=1)
    delay_near_minutes: int = Field(10, ge=0)
    delay_far_minutes: int = Field(70, ge=0)
    send_rate_per_second: float = Field(29, gt=0)
    lease_seconds: int = Field(60, ge=1)
    leader_poll_seconds: float = Field(1.0, gt=0)  # a replica not sending looks this often
    max_attempts: int = Field(8, ge=1)


class PredictionSettings(BaseModel):
    method: Literal["learned", "fixed"] = "learned"
    coverage: float = Field(0.9, gt=0.5, lt=1)
    samples: int = Field(600, ge=100, le=20_000)
    relearn_minutes: float = Field(30, gt=0)
    history_visits: int = Field(20_000, ge=100)
    calibration_forecasts: int = Field(30_000, ge=100)
    record_minutes: float = Field(15, gt=0)
    road_factor: float = Field(1.4, ge=1)
    urban_speed_kmh: float = Field(25, gt=0)
    window_minutes_per_stop_ahead: int = Field(25, ge=0)
    window_min_half_minutes: int = Field(20, ge=0)
    default_timezone: str = "Europe/Berlin"


class HandoffSettings(BaseModel):
    hours: str = "mon-fri 08:00-18:00"  # the service team's, in `timezone`
    timezone: str = ""  # empty: prediction.default_timezone
    claim_timeout_minutes: int = Field(15, ge=1)  # of opening hours, then the customer is told
    waiting_note_minutes: int = Field(10, ge=0)  # at most one "you are number N" per this
    transcript_messages: int = Field(10, ge=0, le=10)  # the bot's own memory holds ten
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    webhook_max_attempts: int = Field(10, ge=1)

    @field_validator("hours")
    @classmethod
    def _readable_hours(cls, value: str) -> str:
        BusinessHours.parse(value, "UTC")  # the message says what is wrong with the line
        return value


class WaitlistSettings(BaseModel):
    hold_minutes: int = Field(15, ge=1, le=24 * 60)  # a freed window is held this long


LogFormat = Literal["text", "json"]


class LoggingSettings(BaseModel):
    format: LogFormat = "text"  # json: one object per line (time, level, logger, message)


class _YamlSource(PydanticBaseSettingsSource):
    """Read the config file; refuse secrets written into it."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self._data = _read_config_file(path)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _read_config_file(path: Path) -> dict[str, Any]:
    """Load a YAML config file into a dict, with errors that name the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SettingsError(f"config file {path} not found (set TECHBOT_CONFIG)") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must hold a mapping of sections")
    for section, key in SECRET_KEYS:
        if isinstance(data.get(section), dict) and data[section].get(key):
            raise SettingsError(
                f"{path} sets the secret {section}.{key}; secrets come from the environment "
                f"only: set TECHBOT_{section.upper()}__{key.upper()} and remove it from the file"
            )
    return data


class Settings(BaseSettings):
    """Every setting of the service, typed."""

    model_config = SettingsConfigDict(
        env_prefix="TECHBOT_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path(".data")
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    telegram: TelegramSettings = TelegramSettings()
    nlu: NluSettings = NluSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    rules: RulesSettings = RulesSettings()
    pushes: PushSettings = PushSettings()
    prediction: PredictionSettings = PredictionSettings()
    logging: LoggingSettings = LoggingSettings()
    handoff: HandoffSettings = HandoffSettings()
    waitlist: WaitlistSettings = WaitlistSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(os.environ.get("TECHBOT_CONFIG") or DEFAULT_CONFIG)
        return (init_settings, env_settings, _YamlSource(settings_cls, path))

    @property
    def database_url(self) -> str:
        """Return the database URL, defaulting to a SQLite file in the data folder."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.resolved_data_dir / 'techbot.sqlite3').as_posix()}"

    @property
    def resolved_data_dir(self) -> Path:
        """Return the data folder as an absolute path (relative ones hang off the project)."""
        path = self.data_dir if self.data_dir.is_absolute() else PROJECT_ROOT / self.data_dir
        return path

    @property
    def telegram_enabled(self) -> bool:
        """Say whether a Telegram token is set (placeholders count as unset)."""
        return _usable(self.telegram.token)

    def require_api_token(self) -> str:
        """Return the API token or stop with a message naming the variable."""
        return _require(self.api.token, "TECHBOT_API__TOKEN", "the ops API")

    def business_hours(self) -> BusinessHours:
        """Return the service team's opening hours in their zone."""
        zone = self.handoff.timezone or self.prediction.default_timezone
        try:
            return BusinessHours.parse(self.handoff.hours, zone)
        except (ValueError, KeyError) as exc:
            raise SettingsError(f"handoff.hours / handoff.timezone (TECHBOT_HANDOFF__HOURS, "
                                f"TECHBOT_HANDOFF__TIMEZONE): {exc}") from None

    def require_handoff_webhook_secret(self) -> str | None:
        """Return the secret of the handoff webhook, None without a webhook URL."""
        if not self.handoff.webhook_url:
            return None
        return _require(self.handoff.webhook_secret, "TECHBOT_HANDOFF__WEBHOOK_SECRET",
                        "the handoff webhook (handoff.webhook_url)")

    def require_webhook_secret(self) -> str:
        """Return the webhook secret or stop with a message naming the variable."""
        return _require(self.telegram.webhook_secret, "TECHBOT_TELEGRAM__WEBHOOK_SECRET",
                        "webhook mode")


def _usable(secret: SecretStr) -> bool:
    return secret.get_secret_value().strip().lower() not in PLACEHOLDER_SECRETS


def _require(secret: SecretStr, variable: str, needed_by: str) -> str:
    if not _usable(secret):
        raise SettingsError(
            f"{variable} is not set (or is a placeholder); {needed_by} needs it. "
            f"Set it in the environment, e.g. export {variable}=$(openssl rand -hex 24)"
        )
    value = secret.get_secret_value()
    if len(value) < 16:
        raise SettingsError(f"{variable} is too short: use at least 16 random characters")
    return value


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from file and environment; a bad value stops with its name."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            dotted = ".".join(str(part) for part in error["loc"])
            variable = "TECHBOT_" + "__".join(str(p).upper() for p in error["loc"])
            lines.append(f"{dotted} ({variable}): {error['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
