"""The parts every edge handler needs, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.metrics import Metrics
from bot.settings import Settings
from storage.models import utcnow


@dataclass
class Services:
    """Settings, database and metrics of one running service."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = utcnow
