"""Which pushes are due for an order now: a pure decision, each push with its dedupe key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dialogues.model import Prediction

# Quiet hours hold back everything else; these cannot wait until morning.
URGENT = frozenset({"eta_near", "delayed", "cancelled_by_operator"})
# After "stop notifications" only a cancellation still reaches the customer.
ALWAYS = frozenset({"cancelled_by_operator"})


@dataclass(frozen=True)
class PushRules:
    """When pushes fall due (config.yml, section pushes)."""

    reminder_local_time: time = time(18, 0)
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    eta_near: timedelta = timedelta(minutes=20)
    delay_threshold: timedelta = timedelta(minutes=20)
    delay_min_interval: timedelta = timedelta(minutes=30)
    narrowed_ratio: float = 0.5
    narrowed_updates: int = 2  # a narrowed window told again when it no longer holds
    # "Late" must be likelier the further off the window's end is: a warning an hour ahead can
    # wait for more evidence (and mostly gets it: the model's P(late) of a visit that will be
    # late climbs towards 1 as the end nears), one in the last minutes cannot.
    delay_probability_near: float = 0.5  # within delay_near before the window ends
    delay_probability_far: float = 0.9  # delay_far or more before it
    delay_near: timedelta = timedelta(minutes=10)
    delay_far: timedelta = timedelta(minutes=70)
    missed_grace: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Change:
    """One change of the booked window."""

    id: int
    by: str  # customer | operator | system
    new_start: datetime | None
    new_end: datetime | None
    at: datetime


@dataclass(frozen=True)
class SentPush:
    """A push already in the outbox (sent or not): it is never decided again."""

    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class OrderFacts:
    """What the decision needs to know about one order."""

    order_id: int
    status: str
    timezone: str
    window_start: datetime | None
    window_end: datetime | None
    notifications_enabled: bool = True
    arrived_at: datetime | None = None
    finished_at: datetime | None = None
    status_reason: str | None = None
    eta_reported: bool = False  # the dispatcher gave an ETA for this very stop
    changes: tuple[Change, ...] = ()
    sent: tuple[SentPush, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class DuePush:
    """A push to put into the outbox."""

    kind: str
    dedupe_key: str
    payload: dict[str, Any]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def in_quiet_hours(now: datetime, zone: ZoneInfo, rules: PushRules) -> bool:
    """Say whether it is night at the visit's place."""
    local = now.astimezone(zone).time()
    if rules.quiet_start <= rules.quiet_end:
        return rules.quiet_start <= local < rules.quiet_end
    return local >= rules.quiet_start or local < rules.quiet_end


@dataclass(frozen=True)
class Decision:
    """The pushes due now, and when the order must be decided again (None: on news only)."""

    pushes: list[DuePush]
    next_at: datetime | None


# "At the next tick": later than this tick's now, earlier than any next one.
NEXT_TICK = timedelta(milliseconds=1)
LIVE_RECHECK_AT_MOST = timedelta(minutes=10)
RECHECK_GRID = timedelta(minutes=1)
GRID_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
# A visit whose window passed a day ago produces nothing more until something changes.
STILL_NEWS = timedelta(days=1)
# Even with nothing in sight, a visit still to come is looked at again within this time.
RECHECK_AT_LEAST = timedelta(hours=1)


def due_pushes(facts: OrderFacts, prediction: Prediction | None, now: datetime,
               rules: PushRules = PushRules()) -> list[DuePush]:
    """Return the pushes that fall due now and were not decided before."""
    return decide_order(facts, prediction, now, rules).pushes


def decide_order(facts: OrderFacts, prediction: Prediction | None, now: datetime,
                 rules: PushRules = PushRules()) -> Decision:
    """Return the pushes due now and the next moment anything about the order can fall due."""
    zone = ZoneInfo(facts.timezone)
    sent_keys = {p.dedupe_key for p in facts.sent}
    candidates = [
        *_cancellation(facts),
        *_reschedules(facts),
        *_reminder(facts, now, zone, rules),
        *_on_the_day(facts, prediction, now, rules),
        *_missed(facts, now, rules),
        *_rating(facts),
    ]
    quiet = in_quiet_hours(now, zone, rules)
    due, held_for_the_night = [], False
    for push in candidates:
        if push.dedupe_key in sent_keys:
            continue
        if not facts.notifications_enabled and push.kind not in ALWAYS:
            continue
        if quiet and not _urgent_tonight(push.kind, facts, now, zone, rules):
            held_for_the_night = True  # decided again after the night, if it still holds
            continue
        due.append(push)
        sent_keys.add(push.dedupe_key)
    return Decision(due, _next_at(facts, prediction, now, zone, rules, sent_keys,
                                  held_for_the_night))


def _next_at(facts: OrderFacts, prediction: Prediction | None, now: datetime, zone: ZoneInfo,
             rules: PushRules, sent_keys: set[str], held_for_the_night: bool
             ) -> datetime | None:
    """Return when the order's pushes can next change without news from dispatch or chat."""
    moments = [_night_ends(now, zone, rules)] if held_for_the_night else []
    coming = facts.status in ("scheduled", "en_route")
    if (coming and facts.window_start is not None and facts.window_end is not None
            and now < facts.window_end + STILL_NEWS):
        if _on_its_day(facts, now, zone) and prediction is not None:
            # The prediction moves with every minute of the day: look again the sooner, the
            # nearer the arrival (a tenth of the time left, between a minute and ten).
            left = max(prediction.eta - now, timedelta(0))
            step = max(RECHECK_GRID, min(LIVE_RECHECK_AT_MOST, left / 10))
            return _on_the_grid(now + step, step)
        local = facts.window_start.astimezone(zone)
        midnight = datetime.combine(local.date(), time(0), tzinfo=zone)
        remind_at = datetime.combine(local.date() - timedelta(days=1),
                                     rules.reminder_local_time, tzinfo=zone)
        moments += [midnight, facts.window_end + rules.missed_grace + timedelta(seconds=1),
                    now + RECHECK_AT_LEAST]
        if f"reminder:{_window_key(facts)}" not in sent_keys:
            moments.append(remind_at)
    later = [m for m in moments if m > now]
    return min(later) if later else (now + NEXT_TICK if moments else None)


def _on_the_grid(moment: datetime, step: timedelta) -> datetime:
    """Round a later look up to the whole minute (five, if minutes away): looks that fall in
    the same minute are made in one tick, not in several."""
    grid = RECHECK_GRID * (5 if step >= 5 * RECHECK_GRID else 1)
    since = moment - GRID_ORIGIN
    return moment + (-since) % grid


def _urgent_tonight(kind: str, facts: OrderFacts, now: datetime, zone: ZoneInfo,
                    rules: PushRules) -> bool:
    """Say whether a push cannot wait for the morning (a delay: only for an early visit)."""
    if kind not in URGENT:
        return False
    if kind != "delayed" or facts.window_start is None:
        return True
    return facts.window_start <= _night_ends(now, zone, rules) + timedelta(hours=1)


def delay_probability(rules: PushRules, before_end: timedelta) -> float:
    """Return how likely lateness must be to warn now, this long before the window ends."""
    share = min(1.0, max(0.0, (before_end - rules.delay_near) / (
        rules.delay_far - rules.delay_near))) if rules.delay_far > rules.delay_near else 1.0
    return rules.delay_probability_near + share * (
        rules.delay_probability_far - rules.delay_probability_near)


def _night_ends(now: datetime, zone: ZoneInfo, rules: PushRules) -> datetime:
    """Return the next end of the quiet hours at the visit's place."""
    local = now.astimezone(zone)
    end = datetime.combine(local.date(), rules.quiet_end, tzinfo=zone)
    return end if end > now else end + timedelta(days=1)


def _on_its_day(facts: OrderFacts, now: datetime, zone: ZoneInfo) -> bool:
    return (facts.window_start is not None
            and facts.window_start.astimezone(zone).date() == now.astimezone(zone).date())


def _window_key(facts: OrderFacts) -> str:
    return _iso(facts.window_start) if facts.window_start else "none"


def _cancellation(facts: OrderFacts) -> list[DuePush]:
    if facts.status != "cancelled":
        return []
    last = facts.changes[-1] if facts.changes else None
    if last is None or last.by == "customer":
        return []  # the customer cancelled in the chat and was told there
    previous = facts.changes[-2] if len(facts.changes) > 1 else None
    payload: dict[str, Any] = {"reason": facts.status_reason}
    if previous is not None and previous.new_start and previous.new_end:
        payload |= {"start": _iso(previous.new_start), "end": _iso(previous.new_end)}
    return [DuePush("cancelled_by_operator", f"cancelled:{last.id}", payload)]


def _reschedules(facts: OrderFacts) -> list[DuePush]:
    # A move in the chat was confirmed there; every other move (operator, phone) is pushed.
    # The first window an order gets is its booking, not a move.
    return [DuePush("rescheduled", f"rescheduled:{c.id}",
                    {"start": _iso(c.new_start), "end": _iso(c.new_end)})
            for index, c in enumerate(facts.changes)
            if index > 0 and c.by != "customer" and c.new_start and c.new_end
            and facts.status in ("scheduled", "en_route")
            and c.new_start == facts.window_start]


def _reminder(facts: OrderFacts, now: datetime, zone: ZoneInfo,
              rules: PushRules) -> list[DuePush]:
    if facts.status != "scheduled" or facts.window_start is None or facts.window_end is None:
        return []
    day_before = facts.window_start.astimezone(zone).date() - timedelta(days=1)
    remind_at = datetime.combine(day_before, rules.reminder_local_time, tzinfo=zone)
    if not remind_at <= now < facts.window_start:
        return []
    return [DuePush("reminder", f"reminder:{_window_key(facts)}",
                    {"start": _iso(facts.window_start), "end": _iso(facts.window_end)})]


def _last_told(facts: OrderFacts) -> SentPush | None:
    key = _window_key(facts)
    told = [p for p in facts.sent if p.kind in ("window_narrowed", "delayed")
            and p.dedupe_key.split(":", 1)[1].startswith(key)]
    return max(told, key=lambda p: p.created_at) if told else None


def _left(prediction: Prediction, told: SentPush) -> bool:
    """Say whether the expected arrival lies outside the window last told."""
    start, end = (datetime.fromisoformat(told.payload[k]) for k in ("from", "to"))
    return not start <= prediction.eta <= end


def _on_the_day(facts: OrderFacts, prediction: Prediction | None, now: datetime,
                rules: PushRules) -> list[DuePush]:
    zone = ZoneInfo(facts.timezone)
    if (prediction is None or facts.status not in ("scheduled", "en_route")
            or facts.window_start is None or facts.window_end is None
            or not _on_its_day(facts, now, zone)):
        return []
    key = _window_key(facts)
    found = []
    booked = facts.window_end - facts.window_start
    told = _last_told(facts)
    window = {"from": _iso(prediction.window_start), "to": _iso(prediction.window_end),
              "eta": _iso(prediction.eta)}
    # Late "more likely than not" (the model's probability, not a point ETA past the window),
    # and the surer the further off the window's end is.
    late = prediction.late > delay_probability(rules, facts.window_end - now)
    near = prediction.eta <= now + rules.eta_near  # then "20 minutes away" says it better
    narrow = prediction.window_end - prediction.window_start <= booked * rules.narrowed_ratio
    inside = not late and not near and prediction.window_end <= facts.window_end
    narrowed = [p for p in facts.sent if p.dedupe_key.startswith(f"narrowed:{key}")]
    if inside and narrow and not narrowed:
        found.append(DuePush("window_narrowed", f"narrowed:{key}", window))
    # The narrower window told no longer holds: the expected arrival left it, still inside the
    # booked window (past it, "delayed" says so). Waiting for a window that passed is what the
    # customer was promised not to do.
    if (inside and told is not None and told.kind == "window_narrowed"
            and _left(prediction, told) and now - told.created_at >= rules.delay_min_interval
            and len(narrowed) <= rules.narrowed_updates):
        found.append(DuePush("window_narrowed", f"narrowed:{key}:{len(narrowed) + 1}",
                             {**window, "update": True}))
    # "About 20 minutes away" only once the technician is really on the way to this door.
    on_the_way = facts.status == "en_route" or facts.eta_reported
    if on_the_way and now <= prediction.eta <= now + rules.eta_near:
        minutes = max(1, round((prediction.eta - now).total_seconds() / 60 / 5) * 5)
        found.append(DuePush("eta_near", f"eta_near:{key}", {"minutes": minutes}))
    told_eta = datetime.fromisoformat(told.payload["eta"]) if told else None
    told_end = datetime.fromisoformat(told.payload["to"]) if told else None
    # Material news: the expected arrival left the window the customer was last told.
    slipped = (told_eta is not None and told_end is not None
               and prediction.eta - told_eta > rules.delay_threshold
               and prediction.eta > told_end)
    warned = any(p.kind == "delayed" and p.dedupe_key.startswith(f"delayed:{key}")
                 for p in facts.sent)
    recent = told is not None and told.kind == "delayed" and (
        now - told.created_at < rules.delay_min_interval)
    # A delay is told once it is likely, and again only when the news changed materially.
    if late and (not warned or slipped) and not recent:
        count = sum(1 for p in facts.sent if p.kind == "delayed")
        found.append(DuePush("delayed", f"delayed:{key}:{count + 1}",
                             {**window, "reason": facts.status_reason}))
    return found


def _missed(facts: OrderFacts, now: datetime, rules: PushRules) -> list[DuePush]:
    if facts.window_start is None or facts.window_end is None or facts.arrived_at is not None:
        return []
    late = now > facts.window_end + rules.missed_grace
    passed = facts.status in ("scheduled", "en_route") and late
    if not (passed or facts.status == "no_show"):
        return []
    return [DuePush("missed_visit", f"missed:{_window_key(facts)}",
                    {"start": _iso(facts.window_start), "end": _iso(facts.window_end)})]


def _rating(facts: OrderFacts) -> list[DuePush]:
    if facts.status != "completed":
        return []
    return [DuePush("rating_request", "rating", {})]
