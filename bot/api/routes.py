"""The ops API through which the dispatch system feeds orders, routes, positions and events."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import handoffs
from bot.api.console import console_router
from bot.api.models import (
    AgentMessageIn,
    CapacityIn,
    ClaimIn,
    CloseIn,
    EventIn,
    OrderIn,
    PositionIn,
    RouteIn,
    TechnicianIn,
)
from bot.api.views import handoff_json, order_json
from bot.services import Services
from storage import handoffs as handoff_store
from storage.chats import create_link_token
from storage.db import transaction
from storage.errors import HandoffConflict, HandoffNotFound, OrderNotFound, TechnicianNotFound
from storage.models import OPEN_HANDOFF, Handoff
from storage.orders import (
    AddressFields,
    CustomerFields,
    record_event,
    require_order,
    upsert_order,
)
from storage.slots import SlotFields, put_capacity
from storage.technicians import (
    StopFields,
    get_technician,
    set_route,
    update_position,
    upsert_technician,
)

log = logging.getLogger(__name__)

OrderNumber = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,32}$", max_length=32)]
TechnicianId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", max_length=64)]
Region = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", max_length=64)]
HandoffId = Annotated[int, Path(ge=1, le=2**31 - 1)]
BEARER = HTTPBearer(auto_error=False)


def authorised(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> None:
    """Document the bearer scheme in OpenAPI; the middleware already refused wrong tokens."""


# Called after an order changed through the API, so pushes can be decided at once.
OrderChanged = Callable[[int], Awaitable[None]]


def build_api(
    services: Services,
    *,
    on_order_changed: OrderChanged | None = None,
    on_position: Callable[[str], Awaitable[None]] | None = None,
    webhook: Callable[[Request], Awaitable[Response]] | None = None,
    readiness: Callable[[], Awaitable[dict[str, bool]]] | None = None,
    wake_sender: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the FastAPI application of the ops API."""
    token = services.settings.require_api_token().encode()
    app = FastAPI(
        title="techbot ops API",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorised)])
    sessions = services.sessions

    async def notify(order_id: int) -> None:
        if on_order_changed is not None:
            await on_order_changed(order_id)

    @api.put("/orders/{number}", status_code=200)
    async def put_order(number: OrderNumber, body: OrderIn, response: Response) -> dict[str, Any]:
        """Create or update an order."""

        def work() -> tuple[dict[str, Any], bool, int]:
            with transaction(sessions) as session:
                now = services.clock()
                order, created = upsert_order(
                    session,
                    number=number,
                    customer=CustomerFields(
                        name=body.customer.name, postal_code=body.customer.postal_code,
                        language=body.customer.language, phone=body.customer.phone,
                        external_id=body.customer.id,
                    ),
                    address=AddressFields(
                        street=body.address.street, postal_code=body.address.postal_code,
                        city=body.address.city, lat=body.address.lat, lon=body.address.lon,
                    ),
                    window=(body.appointment.start, body.appointment.end)
                    if body.appointment else None,
                    technician_id=_known_technician(session, body.technician_id),
                    region=body.region,
                    timezone=body.timezone,
                    default_timezone=services.settings.prediction.default_timezone,
                    monthly_fee_cents=body.monthly_fee_cents,
                    job_type=body.job_type,
                    now=now,
                )
                return order_json(session, order=order, services=services,
                                  now=now), created, order.id

        view, created, order_id = await run_in_threadpool(work)
        if created:
            response.status_code = 201
        await notify(order_id)
        return view

    @api.get("/orders/{number}")
    async def get_order(number: OrderNumber) -> dict[str, Any]:
        """Return the order as the bot sees it."""

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                order = require_order(session, number=number)
                return order_json(session, order=order, services=services,
                                  now=services.clock())

        return await run_in_threadpool(work)

    @api.post("/orders/{number}/link", status_code=201)
    async def link_order(number: OrderNumber) -> dict[str, Any]:
        """Make a single-use deep link that binds a Telegram chat to this order."""
        ttl = timedelta(hours=services.settings.telegram.link_token_ttl_hours)

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                order = require_order(session, number=number)
                now = services.clock()
                link_token = create_link_token(session, order_id=order.id, ttl=ttl, now=now)
                return {
                    "token": link_token,
                    "link": f"https://t.me/{services.settings.telegram.bot_username}"
                    f"?start={link_token}",
                    "expires_at": (now + ttl).isoformat(),
                }

        return await run_in_threadpool(work)

    @api.post("/orders/{number}/events", status_code=201)
    async def post_event(number: OrderNumber, body: EventIn) -> dict[str, Any]:
        """Store a dispatch event and apply it to the order."""
        if body.type == "eta" and body.eta is None:
            raise _unprocessable(("body", "eta"), "an eta event needs the field eta")

        def work() -> tuple[dict[str, Any], int]:
            with transaction(sessions) as session:
                order = require_order(session, number=number)
                now = services.clock()
                event = record_event(session, order=order, type=body.type, at=body.at or now,
                                     eta=body.eta, reason=body.reason, now=now)
                return {"id": event.id, "type": event.type, "order": number,
                        "status": order.status}, order.id

        view, order_id = await run_in_threadpool(work)
        services.metrics.events.labels(body.type).inc()
        await notify(order_id)
        return view

    @api.put("/technicians/{technician_id}")
    async def put_technician(
        technician_id: TechnicianId, body: TechnicianIn, response: Response
    ) -> dict[str, Any]:
        """Create or update a technician."""

        def work() -> bool:
            with transaction(sessions) as session:
                _, created = upsert_technician(session, technician_id=technician_id,
                                               name=body.name, code_word=body.code_word)
                return created

        if await run_in_threadpool(work):
            response.status_code = 201
        return {"id": technician_id, "name": body.name}

    @api.put("/technicians/{technician_id}/route/{day}")
    async def put_route(technician_id: TechnicianId, day: date, body: RouteIn) -> dict[str, Any]:
        """Replace the technician's route for the day."""

        def work() -> list[int]:
            with transaction(sessions) as session:
                try:
                    rows = set_route(
                        session, technician_id=technician_id, day=day,
                        stops=[StopFields(s.order, s.planned_minutes) for s in body.stops],
                    )
                except OrderNotFound as exc:
                    raise _unprocessable(("body", "stops"), f"unknown order(s): {exc}") from None
                except ValueError as exc:
                    raise _unprocessable(("body", "stops"), str(exc)) from None
                return [row.order_id for row in rows]

        order_ids = await run_in_threadpool(work)
        for order_id in order_ids:
            await notify(order_id)
        return {"technician": technician_id, "day": day.isoformat(), "stops": len(order_ids)}

    @api.post("/technicians/{technician_id}/position", status_code=202)
    async def post_position(technician_id: TechnicianId, body: PositionIn) -> dict[str, Any]:
        """Store the technician's latest position."""

        def work() -> bool:
            with transaction(sessions) as session:
                return update_position(session, technician_id=technician_id, lat=body.lat,
                                       lon=body.lon, at=body.at)

        kept = await run_in_threadpool(work)
        if kept and on_position is not None:
            await on_position(technician_id)
        return {"technician": technician_id, "kept": kept}

    @api.put("/capacity/{region}/{day}")
    async def put_region_capacity(region: Region, day: date, body: CapacityIn) -> dict[str, Any]:
        """Set the region's visit windows and capacity for the day."""
        for index, slot in enumerate(body.slots):
            if slot.start.date() != day and slot.end.date() != day:
                raise _unprocessable(("body", "slots", index, "start"),
                                     f"slot does not lie on {day.isoformat()}")
        if len({(s.start, s.end) for s in body.slots}) != len(body.slots):
            raise _unprocessable(("body", "slots"), "a window appears twice")

        def work() -> list[dict[str, Any]]:
            with transaction(sessions) as session:
                rows = put_capacity(
                    session, region=region, day=day,
                    slots=[SlotFields(s.start, s.end, s.capacity) for s in body.slots],
                )
                return [{"start": r.start.isoformat(), "end": r.end.isoformat(),
                         "capacity": r.capacity, "booked": r.booked} for r in rows]

        return {"region": region, "day": day.isoformat(),
                "slots": await run_in_threadpool(work)}

    _handoff_routes(api, services, wake_sender=wake_sender)
    app.include_router(api)
    app.include_router(console_router(services, wake_sender=wake_sender))
    if webhook is not None:
        # Telegram posts here; the handler checks the secret token itself (403 otherwise).
        app.add_api_route("/telegram/webhook", webhook, methods=["POST"],
                          include_in_schema=False)

    def probe() -> bool:
        try:
            with services.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("health check: database unreachable", exc_info=True)
            return False

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Say whether this replica should get traffic: database, NLU and Telegram ready."""
        parts = {"database": await run_in_threadpool(probe),
                 **(await readiness() if readiness else {})}
        ready = all(parts.values())
        return JSONResponse({"status": "ready" if ready else "not ready",
                             **{k: "ok" if v else "not ready" for k, v in parts.items()}},
                            status_code=200 if ready else 503)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Say whether the service and its database answer."""
        ok = await run_in_threadpool(probe)
        return JSONResponse({"status": "ok" if ok else "degraded",
                             "database": "ok" if ok else "unreachable"},
                            status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Export Prometheus metrics."""
        return Response(generate_latest(services.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    _install_error_handlers(app, services)

    # Checked before routing, so a caller without the token learns nothing about bodies.
    app.add_middleware(TokenGate, token=token)
    return app


class TokenGate:
    """Refuse every /api/v1 request without the bearer token (plain ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, *, token: bytes) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 401."""
        if scope["type"] == "http" and scope["path"].startswith("/api/v1"):
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, given = header.partition(b" ")
            if not (scheme.lower() == b"bearer"
                    and secrets.compare_digest(given.strip(), self.token)):
                refusal = JSONResponse(
                    {"detail": "missing or wrong bearer token "
                               "(Authorization: Bearer <TECHBOT_API__TOKEN>)"},
                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequestCounter:
    """Count requests by route and status for /metrics."""

    def __init__(self, app: ASGIApp, *, services: Services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and count its answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.services.metrics.http_requests.labels(path, str(status[0])).inc()


HandoffStatusName = Literal["waiting", "active", "closed"]
Language = Annotated[str, Query(pattern=r"^(de|en|tr|ru|ar)$")]


def _handoff_routes(api: APIRouter, services: Services, *,
                    wake_sender: Callable[[], None] | None) -> None:
    """The agents' side of a handoff: list, read, claim, answer, close."""
    sessions = services.sessions

    def woken(result: dict[str, Any]) -> dict[str, Any]:
        if wake_sender is not None:
            wake_sender()  # the customer should see the agent's words now, not at the next tick
        return result

    def one(session: Session, handoff: Handoff) -> dict[str, Any]:
        return handoff_json(session, handoff=handoff, services=services)

    @api.get("/handoffs")
    async def list_handoffs(status: HandoffStatusName | None = None,
                            language: Language | None = None) -> list[dict[str, Any]]:
        """List handoffs by status and language: waiting ones first, oldest first."""

        def work() -> list[dict[str, Any]]:
            with transaction(sessions) as session:
                found = handoff_store.list_handoffs(
                    session, statuses=[status] if status else list(OPEN_HANDOFF),
                    languages=[language] if language else None)
                return handoffs.summaries(session, services, handoffs=found)

        return await run_in_threadpool(work)

    @api.get("/handoffs/{handoff_id}")
    async def get_handoff(handoff_id: HandoffId) -> dict[str, Any]:
        """Return one handoff with its transcript, the order and the customer."""

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                return one(session, handoff_store.get_handoff(session, handoff_id=handoff_id))

        return await run_in_threadpool(work)

    @api.post("/handoffs/{handoff_id}/claim")
    async def claim_handoff(handoff_id: HandoffId, body: ClaimIn) -> dict[str, Any]:
        """Take the conversation: 200 for the one agent who wins, 409 for the others."""

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                handoff = handoffs.claim(session, services, handoff_id=handoff_id,
                                         agent=body.agent, now=services.clock())
                return one(session, handoff)

        return woken(await run_in_threadpool(work))

    @api.post("/handoffs/{handoff_id}/messages", status_code=202)
    async def post_handoff_message(handoff_id: HandoffId, body: AgentMessageIn) -> dict[str, Any]:
        """Queue the holder's message for the customer's chat (once, through the outbox)."""

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                message_id = handoffs.send(session, services, handoff_id=handoff_id,
                                           agent=body.agent, text=body.text,
                                           now=services.clock())
                return {"id": message_id, "status": "queued"}

        return woken(await run_in_threadpool(work))

    @api.post("/handoffs/{handoff_id}/close")
    async def close_handoff(handoff_id: HandoffId, body: CloseIn) -> dict[str, Any]:
        """Hand the chat back to the bot; the customer is told."""

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                handoff = handoffs.close(session, services, handoff_id=handoff_id,
                                         agent=body.agent, note=body.note,
                                         now=services.clock())
                return one(session, handoff)

        return woken(await run_in_threadpool(work))


def _known_technician(session: Session, technician_id: str | None) -> str | None:
    if technician_id is not None and get_technician(session, technician_id=technician_id) is None:
        raise _unprocessable(("body", "technician_id"),
                             f"unknown technician {technician_id!r}; PUT it first")
    return technician_id


def _unprocessable(location: tuple[str | int, ...], message: str) -> HTTPException:
    return HTTPException(status_code=422,
                         detail=[{"loc": list(location), "msg": message, "type": "value_error"}])


def _install_error_handlers(app: FastAPI, services: Services) -> None:
    @app.exception_handler(OrderNotFound)
    async def order_not_found(_request: Request, exc: OrderNotFound) -> JSONResponse:
        return JSONResponse({"detail": "unknown order"}, status_code=404)

    @app.exception_handler(HandoffNotFound)
    async def handoff_not_found(_request: Request, exc: HandoffNotFound) -> JSONResponse:
        return JSONResponse({"detail": "unknown handoff"}, status_code=404)

    @app.exception_handler(HandoffConflict)
    async def handoff_conflict(_request: Request, exc: HandoffConflict) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=409)

    @app.exception_handler(TechnicianNotFound)
    async def technician_not_found(_request: Request, exc: TechnicianNotFound) -> JSONResponse:
        return JSONResponse({"detail": "unknown technician"}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name the field and the problem, but never echo the submitted values back.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        services.metrics.errors.labels("api").inc()
        log.error("ops API error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error; see the service log"}, status_code=500)

    app.add_middleware(RequestCounter, services=services)
