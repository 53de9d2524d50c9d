"""The command line's logging: one handler, quiet bookkeeping, text or JSON, a file for chats."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import DEBUG_ONLY_LOGGERS, HANDLER_NAME, QUIET_LOGGERS, configure_logging, main
from bot.pushes.scheduler import build_scheduler
from bot.services import Services


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """Give the suite's own logging set-up back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in (*QUIET_LOGGERS,
                                                               *DEBUG_ONLY_LOGGERS)}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def _ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if h.name == HANDLER_NAME]


def test_configuring_twice_leaves_one_handler_and_each_line_once(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "techbot.log"
    configure_logging()
    configure_logging(file=log_file)
    configure_logging(file=log_file)
    assert len(_ours()) == 1
    logging.getLogger("bot.probe").info("said once")
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if "said once" in line] == [lines[-1]]
    assert lines[-1].endswith("INFO bot.probe: said once")


async def test_the_schedulers_job_bookkeeping_is_debug_only(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    async def start_and_stop() -> None:
        scheduler = build_scheduler(services, wake_sender=lambda: None)
        scheduler.start()
        await asyncio.sleep(0.05)  # the job at start runs and is removed
        scheduler.shutdown(wait=False)

    configure_logging()
    with caplog.at_level(logging.INFO):
        await start_and_stop()
    assert not [r for r in caplog.records if r.name.startswith("apscheduler")]

    caplog.clear()
    configure_logging(verbose=True)
    with caplog.at_level(logging.DEBUG):
        await start_and_stop()
    added = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Added job")]
    assert len(added) == 2 and len(set(added)) == 2  # two jobs, told apart by name


def test_json_is_one_object_per_line(tmp_path: Path) -> None:
    log_file = tmp_path / "service.log"
    configure_logging(log_format="json", file=log_file)
    probe = logging.getLogger("bot.probe")
    probe.warning("a quote \" and a\nnew line")
    try:
        raise ValueError("boom")
    except ValueError:
        probe.exception("it failed")
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert {"time", "level", "logger", "message"} <= first.keys()
    assert first["level"] == "WARNING" and first["logger"] == "bot.probe"
    assert first["message"] == "a quote \" and a\nnew line"
    assert second["message"] == "it failed" and "ValueError: boom" in second["traceback"]


def test_the_format_setting_reaches_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TECHBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TECHBOT_LOGGING__FORMAT", "json")
    monkeypatch.setenv("TECHBOT_NLU__URL", "http://127.0.0.1:9")  # never asked: no such order
    assert main(["chat", "--order", "99999999"]) == 2
    logging.getLogger("bot.probe").info("after the chat")
    log_file = tmp_path / "logs" / "techbot-chat.log"
    last = json.loads(log_file.read_text(encoding="utf-8").splitlines()[-1])
    assert last["message"] == "after the chat"
    capsys.readouterr()


def test_chat_logs_to_a_file_and_says_where_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TECHBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TECHBOT_NLU__URL", "http://127.0.0.1:9")
    assert main(["chat", "--order", "99999999"]) == 2
    logging.getLogger("bot.probe").warning("not for the customer's eyes")
    out, err = capsys.readouterr()
    log_file = tmp_path / "logs" / "techbot-chat.log"
    assert "no order 99999999" in out
    assert err.splitlines() == [f"techbot: the log goes to {log_file}"]
    assert "not for the customer's eyes" in log_file.read_text(encoding="utf-8")
    assert "not for the customer's eyes" not in out + err
