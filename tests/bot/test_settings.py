"""Settings: defaults, environment overrides, another file, secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings


def test_defaults_come_from_config_yml() -> None:
    settings = load_settings()
    assert settings.scheduler.tick_seconds == 30
    assert settings.telegram.mode == "polling"
    assert settings.database_url.startswith("sqlite:///")
    assert not settings.telegram_enabled


def test_environment_overrides_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TECHBOT_SCHEDULER__TICK_SECONDS", "5")
    monkeypatch.setenv("TECHBOT_DATABASE__URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("TECHBOT_TELEGRAM__MODE", "webhook")
    settings = load_settings()
    assert settings.scheduler.tick_seconds == 5
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.telegram.mode == "webhook"
    assert settings.rules.max_moves_per_order == 3  # untouched keys keep the file's value


def test_another_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "other.yml"
    path.write_text("rules:\n  max_moves_per_order: 1\n")
    monkeypatch.setenv("TECHBOT_CONFIG", str(path))
    assert load_settings().rules.max_moves_per_order == 1


def test_a_secret_in_the_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "leaky.yml"
    path.write_text("telegram:\n  token: '123:abc'\n")
    monkeypatch.setenv("TECHBOT_CONFIG", str(path))
    with pytest.raises(SettingsError, match="TECHBOT_TELEGRAM__TOKEN"):
        load_settings()


def test_missing_and_placeholder_secrets_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="TECHBOT_API__TOKEN"):
        load_settings().require_api_token()
    monkeypatch.setenv("TECHBOT_API__TOKEN", "change-me")
    with pytest.raises(SettingsError, match="TECHBOT_API__TOKEN"):
        load_settings().require_api_token()
    monkeypatch.setenv("TECHBOT_API__TOKEN", "short")
    with pytest.raises(SettingsError, match="too short"):
        load_settings().require_api_token()
    monkeypatch.setenv("TECHBOT_API__TOKEN", "a-real-token-0123456789")
    assert load_settings().require_api_token() == "a-real-token-0123456789"


def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TECHBOT_SCHEDULER__TICK_SECONDS", "often")
    with pytest.raises(SettingsError, match="TECHBOT_SCHEDULER__TICK_SECONDS"):
        load_settings()


@pytest.mark.parametrize("value", ["http://a:5005, http://b:5006",
                                   '["http://a:5005", "http://b:5006"]'])
def test_nlu_servers_come_as_a_list_or_comma_separated(monkeypatch: pytest.MonkeyPatch,
                                                       value: str) -> None:
    monkeypatch.setenv("TECHBOT_NLU__URLS", value)
    assert load_settings().nlu.server_urls == ["http://a:5005", "http://b:5006"]


def test_one_nlu_url_is_a_list_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().nlu.server_urls == []  # a local server is started
    monkeypatch.setenv("TECHBOT_NLU__URL", "http://a:5005")
    assert load_settings().nlu.server_urls == ["http://a:5005"]
    monkeypatch.setenv("TECHBOT_NLU__URLS", "http://b:5006")
    with pytest.raises(SettingsError, match="not both"):
        load_settings()


def test_a_missing_or_broken_config_file_is_named(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("TECHBOT_CONFIG", str(tmp_path / "absent.yml"))
    with pytest.raises(SettingsError, match=r"absent\.yml"):
        load_settings()
    broken = tmp_path / "broken.yml"
    broken.write_text("rules: [unclosed\n")
    monkeypatch.setenv("TECHBOT_CONFIG", str(broken))
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings()
