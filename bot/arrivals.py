"""The arrival prediction at the edge: learn from storage, hand plain values to dialogues.

Each process keeps what it learned (the model, its calibration, today's traffic) and refreshes
it from the database now and then, so learning costs a tick a few queries, not a scan of history.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.services import LearnedArrivals, Services
from bot.settings import Settings
from dialogues.model import Prediction
from dialogues.prediction import (
    UNJUDGED,
    ArrivalModel,
    Position,
    PredictionRules,
    RouteContext,
    Stop,
    Traffic,
    calibrate_judged,
    judge,
    learn,
    predict_route,
    told_window,
    traffic_today,
)
from storage.db import transaction
from storage.history import (
    add_forecasts,
    forget_forecasts,
    newest_visit_id,
    recent_visits,
    resolved_forecasts,
    visits_of_day,
)
from storage.models import Order, OrderStatus
from storage.orders import orders_booked_between
from storage.technicians import RouteView, routes_of_orders, technicians_by_ids

KEEP_FORECASTS = timedelta(days=30)
RELEARN_SHARE = 100  # learn again once the new visits are this share (1/N) of those learned
LATE_ARRIVAL_REPORT = timedelta(hours=1)


def prediction_rules(settings: Settings) -> PredictionRules:
    """Turn the prediction settings into the model's rules."""
    prediction = settings.prediction
    return PredictionRules(method=prediction.method, coverage=prediction.coverage,
                           samples=prediction.samples, road_factor=prediction.road_factor,
                           urban_speed_kmh=prediction.urban_speed_kmh,
                           minutes_per_stop_ahead=prediction.window_minutes_per_stop_ahead,
                           min_half_minutes=prediction.window_min_half_minutes)


def _refresh(session: Session, state: LearnedArrivals, settings: Settings, now: datetime) -> None:
    """Learn again when new visits finished and the last learning is old enough."""
    every = timedelta(minutes=settings.prediction.relearn_minutes)
    if state.model is None or state.model_at is None or now - state.model_at >= every:
        newest = newest_visit_id(session)
        # Learning reads the whole history again: worth it once the new visits are more than a
        # hundredth of what the model learned from (a few a day, not one every half hour).
        enough = max(1, (state.model.visits if state.model else 0) // RELEARN_SHARE)
        if state.model is None or newest - state.newest_visit >= enough:
            visits = recent_visits(session, before=now, limit=settings.prediction.history_visits)
            state.model, state.newest_visit = learn(visits), newest
        state.model_at = now
    if state.calibration_at is None or now - state.calibration_at >= every:
        keep = settings.prediction.calibration_forecasts
        # Only visits that arrived since the last look add forecasts to judge (an arrival
        # reported up to LATE_ARRIVAL_REPORT late still counts); the rest are judged already.
        since = (None if state.judged_until is None or now < state.judged_until
                 else state.judged_until - LATE_ARRIVAL_REPORT)
        if since is None:
            state.judged = {}
        for forecast in reversed(resolved_forecasts(session, before=now, limit=keep,
                                                    arrived_after=since)):
            state.judged.setdefault(forecast.id, judge(forecast))
        while len(state.judged) > keep:  # the oldest judged go first
            del state.judged[next(iter(state.judged))]
        state.judged_until = now
        state.calibration = calibrate_judged(list(state.judged.values()),
                                             coverage=settings.prediction.coverage)
        state.calibration_at = now
        forget_forecasts(session, before=now - KEEP_FORECASTS)
        state.recorded = {k: v for k, v in state.recorded.items() if now - v < timedelta(days=1)}


def _traffic(session: Session, state: LearnedArrivals, model: ArrivalModel, day: date,
             now: datetime) -> Traffic:
    """Return today's traffic, read again every few minutes as drives finish."""
    cached = state.traffic.get(day)
    if cached is not None and now - cached[0] < timedelta(minutes=5):
        return cached[1]
    traffic = traffic_today(model, visits_of_day(session, day=day, before=now))
    state.traffic = {d: v for d, v in state.traffic.items() if d >= day - timedelta(days=1)}
    state.traffic[day] = (now, traffic)
    return traffic


def _stops(route: RouteView) -> list[Stop]:
    stops = []
    for stop, order in route.stops:
        # Nobody home: the technician was there and left at the no-show's time.
        no_show = order.status == OrderStatus.NO_SHOW
        stops.append(Stop(
            order_id=order.id, planned_minutes=stop.planned_minutes,
            window_start=order.window_start, window_end=order.window_end, lat=order.lat,
            lon=order.lon, arrived_at=order.finished_at if no_show else order.arrived_at,
            finished_at=order.finished_at, eta=order.eta, eta_at=order.eta_reported_at,
            departed_at=order.departed_at, job_type=order.job_type,
            cancelled=order.status == OrderStatus.CANCELLED
            or (no_show and order.finished_at is None)))
    return stops


def predictions(session: Session, routes: list[RouteView], *, services: Services,
                now: datetime, record: bool = False) -> dict[int, Prediction]:
    """Predict the remaining stops of every route of today (or tomorrow), keyed by order id.

    With `record`, keep the model's raw forecasts (at most one per visit every
    `prediction.record_minutes`) so the calibration can later judge them against arrivals.
    """
    settings, state = services.settings, services.learned
    rules = prediction_rules(settings)
    found: dict[int, Prediction] = {}
    with state.lock:
        if rules.method == "learned":
            _refresh(session, state, settings, now)
        technicians = technicians_by_ids(session, technician_ids=[r.technician_id
                                                                  for r in routes])
        for route in routes:
            zone = ZoneInfo(route.stops[0][1].timezone if route.stops else
                            settings.prediction.default_timezone)
            local = now.astimezone(zone)
            if route.day not in (local.date(), (local + timedelta(hours=12)).date()):
                continue  # a route of another day predicts nothing about today
            technician = technicians.get(route.technician_id)
            position = (Position(technician.lat, technician.lon, technician.position_at)
                        if technician and technician.lat is not None
                        and technician.lon is not None and technician.position_at is not None
                        else None)
            midnight = datetime.combine(route.day, datetime.min.time(), tzinfo=zone)
            model = state.model if rules.method == "learned" else None
            context = RouteContext(
                technician=route.technician_id, day=route.day,
                local_minute=(now - midnight).total_seconds() / 60,
                traffic=_traffic(session, state, model, route.day, now) if model else None)
            found.update(predict_route(_stops(route), now=now, position=position, rules=rules,
                                       model=model, calibration=state.calibration,
                                       context=context))
        if record and rules.method == "learned":
            _record(session, state, found, settings, now)
    return found


BACKTEST_DAY = (timedelta(hours=7, minutes=30), timedelta(hours=16, minutes=30))  # judged span


def _as_of(stop: Stop, moment: datetime) -> Stop:
    """Return the stop as it was known at `moment` (what happened later is hidden)."""
    def known(at: datetime | None) -> datetime | None:
        return at if at is not None and at <= moment else None

    return replace(stop, arrived_at=known(stop.arrived_at), finished_at=known(stop.finished_at),
                   departed_at=known(stop.departed_at), eta=None, eta_at=None)


def backtest(session: Session, *, services: Services, order_ids: list[int]) -> int:
    """Judge the model on past routes: keep what it would have said then as forecasts.

    For each past route of these orders, at 18:00 the evening before and through the
    working day as often as live forecasts are kept, the model learned from the days before
    predicts the route as it stood then. The calibration judges those forecasts against the
    real arrivals like live ones, so imported history gives the model a track record before
    its first live day. Returns how many.
    """
    settings = services.settings
    rules = prediction_rules(settings)
    if rules.method != "learned" or not order_ids:
        return 0
    routes = routes_of_orders(session, order_ids=order_ids)
    history = recent_visits(session, before=services.clock(),
                            limit=settings.prediction.history_visits)
    models: dict[date, ArrivalModel] = {}
    step, count = timedelta(minutes=settings.prediction.record_minutes), 0
    for route in routes:
        zone = ZoneInfo(route.stops[0][1].timezone if route.stops else
                        settings.prediction.default_timezone)
        if route.day not in models:
            models[route.day] = learn([v for v in history if v.day < route.day])
        midnight = datetime.combine(route.day, datetime.min.time(), tzinfo=zone)
        moments, moment = [midnight - timedelta(hours=6)], midnight + BACKTEST_DAY[0]
        while moment <= midnight + BACKTEST_DAY[1]:
            moments.append(moment)
            moment += step
        arrived = {order.id: order.arrived_at for _, order in route.stops}
        for moment in moments:
            stops = [_as_of(stop, moment) for stop in _stops(route)]
            context = RouteContext(route.technician_id, route.day,
                                   (moment - midnight).total_seconds() / 60)
            found = predict_route(stops, now=moment, rules=rules, model=models[route.day],
                                  calibration=UNJUDGED, context=context)
            rows = [(order_id, *p.raw, p.ahead) for order_id, p in found.items()
                    if p.raw is not None and (arrived.get(order_id) or moment) > moment]
            if rows:
                add_forecasts(session, rows=rows, made_at=moment)
                count += len(rows)
    services.learned.calibration_at = services.learned.judged_until = None  # judge all again
    return count


def _record(session: Session, state: LearnedArrivals, found: dict[int, Prediction],
            settings: Settings, now: datetime) -> None:
    every = timedelta(minutes=settings.prediction.record_minutes)
    rows = []
    for order_id, prediction in found.items():
        last = state.recorded.get(order_id)
        if prediction.raw is None or (last is not None and now - last < every):
            continue
        rows.append((order_id, *prediction.raw, prediction.ahead))
        state.recorded[order_id] = now
    if rows:
        add_forecasts(session, rows=rows, made_at=now)


def prediction_of(order: Order, predicted: dict[int, Prediction], *,
                  settings: Settings) -> Prediction | None:
    """Return the route's prediction for the order, or one around the dispatcher's bare ETA."""
    if order.status not in ("scheduled", "en_route"):
        return None
    found = predicted.get(order.id)
    if found is None and order.eta is not None:
        half = timedelta(minutes=settings.prediction.window_min_half_minutes)
        late = 1.0 if order.window_end is not None and order.eta > order.window_end else 0.0
        return Prediction(eta=order.eta, window_start=order.eta - half,
                          window_end=order.eta + half, late=late)
    return found


def predict_for_order(
    session: Session, *, order: Order, services: Services, now: datetime,
    routes: list[RouteView] | None = None,
) -> Prediction | None:
    """Return the expected arrival at this order, from its technician's route (read if None)."""
    if routes is None:
        routes = routes_of_orders(session, order_ids=[order.id])
    return prediction_of(order, predictions(session, routes, services=services, now=now),
                         settings=services.settings)


@dataclass(frozen=True)
class StatusAnswer:
    """What "when is the technician coming?" answers for one visit: the window and the ETA."""

    number: str
    timezone: str
    window_start: datetime
    window_end: datetime
    eta: datetime | None
    late_probability: float | None = None  # the model's P(arrival after the booked window)


def status_answers(services: Services, *, now: datetime) -> list[StatusAnswer]:
    """Answer the status question for every visit of today whose technician has not arrived."""
    settings = services.settings
    with transaction(services.sessions) as session:
        orders = [o for o in orders_booked_between(session, start=now - timedelta(days=1),
                                                   end=now + timedelta(days=1))
                  if o.window_start is not None and o.window_end is not None
                  and _local_day(o.window_start, o.timezone) == _local_day(now, o.timezone)]
        routes = routes_of_orders(session, order_ids=[o.id for o in orders])
        predicted = predictions(session, routes, services=services, now=now)
        answers = []
        for order in sorted(orders, key=lambda o: o.number):
            assert order.window_start is not None and order.window_end is not None
            prediction = prediction_of(order, predicted, settings=settings)
            start, end, eta = told_window(prediction, order.window_start, order.window_end)
            answers.append(StatusAnswer(order.number, order.timezone, start, end, eta,
                                        prediction.late if prediction else None))
        return answers


def _local_day(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()
