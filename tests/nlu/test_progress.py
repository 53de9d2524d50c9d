"""The progress line while the NLU trains or starts, and errors that name the log file."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nlu.progress import CLEAR_LINE, ProgressLine, training_step
from nlu.project import NluSetupError, RasaServer, wait_until_ready


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_a_spinner_with_elapsed_time_and_the_step(tmp_path: Path) -> None:
    terminal = Terminal()
    steps = iter(["step 1: RegexFeaturizer", "step 2: CountVectorsFeaturizer"])
    progress = ProgressLine("training the NLU model", expected="usually about five minutes",
                            log_path=tmp_path / "train.log", stream=terminal, interval=0.01,
                            detail=lambda: next(steps, "step 2: CountVectorsFeaturizer"))
    with progress:
        deadline = time.monotonic() + 10
        while terminal.getvalue().count(CLEAR_LINE) < 3 and time.monotonic() < deadline:
            pass  # the drawing thread redraws every 10 ms
    drawn = terminal.getvalue().split(CLEAR_LINE)
    assert drawn[1] == ("⠋ training the NLU model: 0 s (usually about five minutes) · "
                        "step 1: RegexFeaturizer")
    assert "step 2: CountVectorsFeaturizer" in drawn[2]
    assert drawn[-1].startswith("✓ training the NLU model: done in ") and drawn[-1].endswith("\n")


def test_a_failure_names_the_log_and_a_pipe_gets_log_lines_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        with caplog.at_level(logging.INFO), pytest.raises(RuntimeError), ProgressLine(
                "starting the NLU server", expected="usually about 40 s",
                log_path=tmp_path / "rasa.log", stream=stream):
            raise RuntimeError("no")
    assert terminal.getvalue().endswith(f"✗ starting the NLU server failed after 0 s; "
                                        f"log: {tmp_path / 'rasa.log'}\n")
    assert pipe.getvalue() == ""
    messages = [r.getMessage() for r in caplog.records if r.name == "nlu.progress"]
    assert messages[:2] == [f"starting the NLU server (usually about 40 s); log: "
                            f"{tmp_path / 'rasa.log'}",
                            f"starting the NLU server failed after 0 s; log: "
                            f"{tmp_path / 'rasa.log'}"]


def test_the_training_step_is_read_from_rasas_log(tmp_path: Path) -> None:
    log_path = tmp_path / "train.log"
    assert training_step(log_path) == ""
    log_path.write_text("warnings\n", encoding="utf-8")
    assert training_step(log_path) == "preparing"
    log_path.write_text(
        "INFO rasa.engine.training.hooks  - Starting to train component 'RegexFeaturizer'.\n"
        "INFO rasa.engine.training.hooks  - Finished training component 'RegexFeaturizer'.\n"
        "INFO rasa.engine.training.hooks  - Starting to train component "
        "'LogisticRegressionClassifier'.\n", encoding="utf-8")
    assert training_step(log_path) == "step 2: LogisticRegressionClassifier"


def test_a_server_that_dies_at_start_is_an_error_naming_its_log(tmp_path: Path) -> None:
    log_path = tmp_path / "rasa.log"
    log_path.write_text("OSError: [Errno 98] address already in use\n", encoding="utf-8")
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(NluSetupError) as raised:
        wait_until_ready("http://127.0.0.1:9", timeout=5, process=dead, log_path=log_path)
    assert f"exited with 3 (log {log_path})" in str(raised.value)
    assert "address already in use" in str(raised.value)


def test_a_server_that_never_answers_names_its_log(tmp_path: Path) -> None:
    with pytest.raises(NluSetupError, match=r"did not answer within 0 s \(log .*rasa\.log\)"):
        wait_until_ready("http://127.0.0.1:9", timeout=0.1, log_path=tmp_path / "rasa.log")


def test_starting_a_server_without_a_model_says_which_command_fixes_it(tmp_path: Path) -> None:
    with pytest.raises(NluSetupError, match="techbot nlu train"):
        RasaServer(port=9, model=tmp_path / "missing.tar.gz").start()
