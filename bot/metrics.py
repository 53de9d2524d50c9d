"""Prometheus metrics of one service instance, on its own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every counter the service exports at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "techbot_http_requests_total", "Ops API requests", ["route", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "techbot_dispatch_events_total", "Dispatch events received", ["type"],
            registry=self.registry,
        )
        self.updates = Counter(
            "techbot_updates_total", "Customer messages and button presses handled", ["kind"],
            registry=self.registry,
        )
        self.reply_seconds = Histogram(
            "techbot_reply_seconds", "Time from an update's arrival to the reply",
            registry=self.registry,
        )
        self.nlu_failures = Counter(
            "techbot_nlu_failures_total", "NLU requests that failed or timed out", ["reason"],
            registry=self.registry,
        )
        self.nlu_up = Gauge(
            "techbot_nlu_up", "1 while the NLU server answers", registry=self.registry
        )
        self.pushes = Counter(
            "techbot_pushes_total", "Outbox deliveries by kind and outcome", ["kind", "outcome"],
            registry=self.registry,
        )
        self.handoffs = Counter(
            "techbot_handoffs_total", "Handoffs to a person by event", ["event"],
            registry=self.registry,
        )
        self.sender_leader = Gauge(
            "techbot_sender_leader", "1 while this replica sends the outbox",
            registry=self.registry,
        )
        self.throttled = Counter(
            "techbot_telegram_429_total", "Messages Telegram refused with 429 (too many)",
            registry=self.registry,
        )
        self.errors = Counter(
            "techbot_errors_total", "Unhandled errors caught at the edge", ["where"],
            registry=self.registry,
        )


class NluMetrics:
    """Where the NLU client reports failures: the service's counters."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def failed(self, reason: str) -> None:
        """Count a failed or timed-out NLU request."""
        self._metrics.nlu_failures.labels(reason).inc()

    def up(self, available: bool) -> None:
        """Record whether the NLU server answers."""
        self._metrics.nlu_up.set(1 if available else 0)
