"""A real Rasa server on the trained model, shared by the NLU integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nlu.commands import free_port
from nlu.project import RASA_VENV, RasaServer, model_path


@pytest.fixture(scope="session")
def rasa_server() -> Iterator[RasaServer]:
    """Start the Rasa server once for the session (`make test` trains the model first)."""
    if not (RASA_VENV / "bin" / "rasa").exists() or not model_path().exists():
        pytest.skip("no Rasa environment or trained model: run `make model` (make test does)")
    server = RasaServer(port=free_port())
    server.start()
    yield server
    server.stop()
