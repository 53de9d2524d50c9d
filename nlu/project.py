"""The Rasa project: build normalised training data, train once per data hash, serve the model."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from nlu.progress import ProgressLine, training_step
from nlu.training_data import (
    HeldOutLeak,
    check_held_out,
    data_files,
    load_examples,
    write_training_data,
)

log = logging.getLogger(__name__)

NLU_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = NLU_DIR.parent
RASA_VENV = PROJECT_ROOT / ".rasa-venv"
# Everything the trained model depends on; a change to any of them means a new model.
MODEL_INPUTS = (
    "nlu/config.yml",
    "nlu/components.py",
    "nlu/regex.yml",
    "nlu/normalize.py",
    "nlu/training_data.py",
    "nlu/requirements-rasa.lock",
)


class NluSetupError(Exception):
    """The Rasa environment or model is missing; the message says which command fixes it."""


def cache_dir() -> Path:
    """Return the folder shared by every checkout on this machine for venvs and models."""
    base = os.environ.get("TECHBOT_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "techbot"


def model_hash(config: Path | None = None) -> str:
    """Hash the training data, the pipeline and the code that prepares them."""
    digest = hashlib.sha256()
    # A candidate pipeline stands in for nlu/config.yml: its model does not change with it.
    inputs = [*data_files(), *(config if config is not None and p == "nlu/config.yml"
                               else PROJECT_ROOT / p for p in MODEL_INPUTS)]
    for path in inputs:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_path(config: Path | None = None) -> Path:
    """Return where the model for the current data lives (it may not exist yet)."""
    prefix = f"{config.stem}-" if config is not None else ""
    return cache_dir() / "models" / f"{prefix}nlu-{model_hash(config)}.tar.gz"


def rasa_executable() -> Path:
    """Return the rasa command of the project's own Python 3.10 environment."""
    rasa = RASA_VENV / "bin" / "rasa"
    if not rasa.exists():
        raise NluSetupError("the Rasa environment is missing: run `make rasa` (or `make test`)")
    return rasa


def train(*, force: bool = False, config: Path | None = None) -> Path:
    """Train the model unless one for the same data and config exists; return its path."""
    # A candidate pipeline under evaluation gets its own name, never the served model's.
    config = config.resolve() if config is not None else None
    target = model_path(config)
    if target.exists() and not force:
        log.info("NLU model is up to date: %s", target)
        return target
    rasa = rasa_executable()
    train_examples = load_examples("data")
    try:
        check_held_out(train_examples, load_examples("tests"))
    except HeldOutLeak as exc:
        raise NluSetupError(f"{exc} (`techbot nlu drop-held-out` deletes them)") from None
    build = cache_dir() / "build" / model_hash()
    shutil.rmtree(build, ignore_errors=True)
    write_training_data(build / "data", train_examples)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log_path = cache_dir() / "logs" / f"train-{target.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with ProgressLine("training the NLU model", expected="usually about five minutes",
                      log_path=log_path, detail=lambda: training_step(log_path)):
        with log_path.open("wb") as out:
            finished = subprocess.run(  # noqa: S603 - our own venv's rasa, fixed arguments
                [str(rasa), "train", "nlu", "--config", str(config or NLU_DIR / "config.yml"),
                 "--nlu", str(build / "data"), "--out", str(target.parent),
                 "--fixed-model-name", target.name.removesuffix(".tar.gz")],
                cwd=build, env=_rasa_env(), stdout=out, stderr=subprocess.STDOUT, check=False,
            )
        if finished.returncode != 0 or not target.exists():
            tail = log_path.read_text(errors="replace")[-3000:]
            raise NluSetupError(f"training failed (exit {finished.returncode}; log {log_path}):"
                                f"\n{tail}")
    log.info("trained %s in %.0f s", target.name, time.monotonic() - started)
    return target


def _rasa_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's start-up chatter hides real errors
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONWARNINGS": "ignore",
        # The pipeline's own component (nlu/components.py) is imported from this checkout.
        "PYTHONPATH": os.pathsep.join(filter(None, (str(PROJECT_ROOT), env.get("PYTHONPATH")))),
    })
    return env


class RasaServer:
    """A local `rasa run --enable-api` process on the current model."""

    def __init__(self, *, port: int, model: Path | None = None, outlive_parent: bool = False
                 ) -> None:
        self.port = port
        self.outlive_parent = outlive_parent  # `techbot nlu serve` leaves it running
        self.model = model or model_path()
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = cache_dir() / "logs" / f"rasa-{port}.log"

    def start(self, *, timeout: float = 180) -> None:
        """Start the server and return once it parses a message."""
        if not self.model.exists():
            raise NluSetupError(f"no NLU model at {self.model}: run `techbot nlu train`")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [str(rasa_executable()), "run", "--enable-api", "-m", str(self.model),
                   "--port", str(self.port), "-i", "127.0.0.1"]
        if not self.outlive_parent:  # ends with us, even when we are SIGKILLed
            command = [str(rasa_executable().with_name("python")),
                       str(NLU_DIR / "watchdog.py"), str(os.getpid()), *command]
        with ProgressLine("starting the NLU server", expected="usually about 40 s",
                          log_path=self.log_path):
            self.process = self.launch(command)
            wait_until_ready(self.url, timeout=timeout, process=self.process,
                             log_path=self.log_path)

    def launch(self, command: list[str]) -> subprocess.Popen[bytes]:
        """Start the server's process, its output into the log file."""
        with self.log_path.open("wb") as out:
            return subprocess.Popen(  # noqa: S603 - our own venv's rasa
                command, stdout=out, stderr=subprocess.STDOUT, env=_rasa_env(),
                cwd=cache_dir(), start_new_session=True,
            )

    def stop(self) -> None:
        """Stop the server and its children."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def wait_until_ready(
    url: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll the server until it parses a message, or fail with the reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
            raise NluSetupError(f"the Rasa server exited with {process.returncode} "
                                f"(log {log_path}):\n{tail}")
        try:
            response = httpx.post(f"{url}/model/parse", json={"text": "hallo"}, timeout=5)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    where = f" (log {log_path})" if log_path else ""
    raise NluSetupError(f"the Rasa server at {url} did not answer within {timeout:.0f} s{where}")
