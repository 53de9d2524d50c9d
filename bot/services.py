"""The parts every edge handler needs, built once by the composition root."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.metrics import Metrics
from bot.settings import Settings
from dialogues.prediction import UNJUDGED, ArrivalModel, Calibration, Judged, Traffic
from storage.models import utcnow


@dataclass
class LearnedArrivals:
    """What this process learned about arrivals (bot/arrivals.py), and when it last looked."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    model: ArrivalModel | None = None
    model_at: datetime | None = None
    newest_visit: int = -1
    calibration: Calibration = UNJUDGED
    calibration_at: datetime | None = None
    traffic: dict[date, tuple[datetime, Traffic]] = field(default_factory=dict)
    recorded: dict[int, datetime] = field(default_factory=dict)  # order -> last forecast kept
    # Past forecasts already judged (forecast id -> score), oldest first; read again only new.
    judged: dict[int, Judged] = field(default_factory=dict)
    judged_until: datetime | None = None


@dataclass
class Services:
    """Settings, database and metrics of one running service."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = utcnow
    learned: LearnedArrivals = field(default_factory=LearnedArrivals)
    # Set when the service stops: long work in threads (a tick's batches) ends at its next step.
    stopping: threading.Event = field(default_factory=threading.Event)
