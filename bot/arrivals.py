"""The arrival prediction at the edge: read routes and positions, hand plain stops to dialogues."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.settings import Settings
from dialogues.model import Prediction
from dialogues.prediction import Position, PredictionRules, Stop, predict_route
from storage.models import Order, OrderStatus
from storage.technicians import RouteView, get_technician, routes_of_orders


def prediction_rules(settings: Settings) -> PredictionRules:
    """Turn the prediction settings into the model's rules."""
    prediction = settings.prediction
    return PredictionRules(road_factor=prediction.road_factor,
                           urban_speed_kmh=prediction.urban_speed_kmh,
                           minutes_per_stop_ahead=prediction.window_minutes_per_stop_ahead,
                           min_half_minutes=prediction.window_min_half_minutes)


def predictions(session: Session, routes: list[RouteView], *, settings: Settings,
                now: datetime) -> dict[int, Prediction]:
    """Predict the remaining stops of every route, keyed by order id."""
    rules = prediction_rules(settings)
    found: dict[int, Prediction] = {}
    for route in routes:
        technician = get_technician(session, technician_id=route.technician_id)
        position = (Position(technician.lat, technician.lon, technician.position_at)
                    if technician and technician.lat is not None and technician.lon is not None
                    and technician.position_at is not None else None)
        stops = [Stop(order_id=order.id, planned_minutes=stop.planned_minutes,
                      window_start=order.window_start, lat=order.lat, lon=order.lon,
                      arrived_at=order.arrived_at, finished_at=order.finished_at,
                      eta=order.eta,
                      cancelled=order.status in (OrderStatus.CANCELLED, OrderStatus.NO_SHOW))
                 for stop, order in route.stops]
        if route.day != now.date() and route.day != (now + timedelta(hours=12)).date():
            continue  # a route of another day predicts nothing about today
        found.update(predict_route(stops, now=now, position=position, rules=rules))
    return found


def prediction_of(order: Order, predicted: dict[int, Prediction], *,
                  settings: Settings) -> Prediction | None:
    """Return the route's prediction for the order, or one around the dispatcher's bare ETA."""
    if order.status not in ("scheduled", "en_route"):
        return None
    found = predicted.get(order.id)
    if found is None and order.eta is not None:
        half = timedelta(minutes=settings.prediction.window_min_half_minutes)
        return Prediction(eta=order.eta, window_start=order.eta - half,
                          window_end=order.eta + half)
    return found


def predict_for_order(
    session: Session, *, order: Order, settings: Settings, now: datetime,
    routes: list[RouteView] | None = None,
) -> Prediction | None:
    """Return the expected arrival at this order, from its technician's route (read if None)."""
    if routes is None:
        routes = routes_of_orders(session, order_ids=[order.id])
    return prediction_of(order, predictions(session, routes, settings=settings, now=now),
                         settings=settings)
