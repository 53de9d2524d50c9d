"""The agent console: agents log in with their own name and password and answer handoffs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot import handoffs
from bot.api.models import AgentMessageIn, CloseIn, MessageIn, NoteIn
from bot.api.views import handoff_json
from bot.services import Services
from storage import handoffs as handoff_store
from storage.agents import check_password, get_agent
from storage.db import transaction
from storage.errors import HandoffNotFound
from storage.models import OPEN_HANDOFF, Handoff

PAGES = Path(__file__).resolve().parent / "console"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)
SESSION_COOKIE = "techbot_console"
LOGIN_COOKIE = "techbot_console_login"  # the login form's CSRF token, before any session
SESSION_HOURS = 12
HandoffId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
LANGUAGES = ("de", "en", "tr", "ru", "ar")


def content_security_policy(page: str) -> str:
    """Allow the page's own inline script and style (by hash) and requests to itself only."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(page):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    # Hashes rather than 'unsafe-inline': the page shows customers' text, and should any of it
    # ever become markup, a script injected with it still would not run.
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' {' '.join(hashes['script'])}",
        f"style-src 'self' {' '.join(hashes['style'])}",
        "img-src 'self'", "connect-src 'self'",
        "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ])


@dataclass(frozen=True)
class AgentSession:
    """Who is logged in, the CSRF token of their session, and the languages they answer."""

    agent: str
    csrf: str
    languages: tuple[str, ...] | None  # None: every language


class _Page:
    """One HTML page with {{placeholders}} outside its script and style, and its headers."""

    def __init__(self, name: str) -> None:
        self.text = (PAGES / name).read_text(encoding="utf-8")
        self.headers = {
            # A stale page after a deploy would talk to routes that changed under it.
            "Cache-Control": "no-store",
            "Content-Security-Policy": content_security_policy(self.text),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }

    def render(self, status: int = 200, **values: str) -> HTMLResponse:
        page = self.text
        for key, value in values.items():
            page = page.replace("{{" + key + "}}", html.escape(value))
        return HTMLResponse(page, status_code=status, headers=self.headers)


def console_router(services: Services, *,
                   wake_sender: Callable[[], None] | None = None) -> APIRouter:
    """Serve /console: the login, the page and the JSON it reads, behind an agent session."""
    # The session key is derived from the API token: one secret less to keep, and a new API
    # token logs every agent out.
    key = hmac.new(services.settings.require_api_token().encode(), b"techbot console session",
                   hashlib.sha256).hexdigest()
    signer = URLSafeTimedSerializer(key, salt="techbot-console")
    console, login = _Page("index.html"), _Page("login.html")
    sessions = services.sessions
    router = APIRouter(prefix="/console", include_in_schema=False)

    def secure(request: Request) -> bool:
        return (request.url.scheme == "https"
                or request.headers.get("x-forwarded-proto", "") == "https")

    def read(request: Request, cookie: str, max_hours: float) -> dict[str, Any] | None:
        raw = request.cookies.get(cookie)
        if not raw:
            return None
        try:
            value = signer.loads(raw, max_age=int(max_hours * 3600))
        except BadSignature:
            return None
        return value if isinstance(value, dict) else None

    def current(request: Request) -> AgentSession | None:
        value = read(request, SESSION_COOKIE, SESSION_HOURS)
        if value is None:
            return None
        with transaction(sessions) as session:  # a disabled agent is out at once
            agent = get_agent(session, name=str(value.get("agent")))
            if agent is None:
                return None
            return AgentSession(agent.name, str(value.get("csrf")),
                                tuple(agent.languages) or None)

    async def agent_session(request: Request) -> AgentSession:
        found = await run_in_threadpool(current, request)
        if found is None:
            raise HTTPException(401, "log in at /console/login")
        if request.method != "GET":
            given = request.headers.get("x-csrf-token", "")
            if not secrets.compare_digest(given.encode(), found.csrf.encode()):
                raise HTTPException(403, "missing or wrong X-CSRF-Token")
        return found

    who_is_in = Depends(agent_session)

    def login_page(request: Request, status: int = 200, error: str = "") -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        page = login.render(status, csrf=token, error=error)
        page.set_cookie(LOGIN_COOKIE, signer.dumps({"csrf": token}), max_age=3600,
                        httponly=True, samesite="strict", secure=secure(request),
                        path="/console")
        return page

    @router.get("/login")
    async def login_form(request: Request) -> HTMLResponse:
        """Show the login form."""
        return login_page(request)

    @router.post("/login", response_model=None)
    async def log_in(request: Request, name: Annotated[str, Form(max_length=100)],
                     password: Annotated[str, Form(max_length=200)],
                     csrf: Annotated[str, Form(max_length=100)]) -> Response:
        """Check name and password; start a session in a signed, HttpOnly cookie."""
        expected = (read(request, LOGIN_COOKIE, 1) or {}).get("csrf", "")
        if not expected or not secrets.compare_digest(csrf.encode(), str(expected).encode()):
            return login_page(request, 403, "The form was too old; please log in again.")

        def check() -> str | None:
            with transaction(sessions) as session:
                agent = check_password(session, name=name, password=password)
                return agent.name if agent else None

        agent = await run_in_threadpool(check)
        if agent is None:  # one answer for a wrong name and a wrong password
            return login_page(request, 401, "Wrong name or password.")
        done = RedirectResponse("/console", status_code=303)
        done.set_cookie(SESSION_COOKIE,
                        signer.dumps({"agent": agent, "csrf": secrets.token_urlsafe(24)}),
                        max_age=SESSION_HOURS * 3600, httponly=True, samesite="strict",
                        secure=secure(request), path="/console")
        done.delete_cookie(LOGIN_COOKIE, path="/console")
        return done

    @router.post("/logout")
    async def log_out(request: Request, csrf: Annotated[str, Form(max_length=100)]
                      ) -> RedirectResponse:
        """End the session."""
        found = await run_in_threadpool(current, request)
        done = RedirectResponse("/console/login", status_code=303)
        if found is not None and secrets.compare_digest(csrf.encode(), found.csrf.encode()):
            done.delete_cookie(SESSION_COOKIE, path="/console")
        return done

    @router.get("", response_model=None)
    async def page(request: Request) -> Response:
        """The console, or the login form for a visitor without a session."""
        found = await run_in_threadpool(current, request)
        if found is None:
            return RedirectResponse("/console/login", status_code=303)
        return console.render(agent=found.agent, csrf=found.csrf,
                              languages=",".join(found.languages or LANGUAGES))

    def mine(handoff: Handoff, who: AgentSession) -> Handoff:
        # Another language's handoff does not exist for this agent.
        if who.languages is not None and handoff.language not in who.languages:
            raise HandoffNotFound(str(handoff.id))
        return handoff

    def one(session: Session, handoff: Handoff) -> dict[str, Any]:
        return handoff_json(session, handoff=handoff, services=services)

    async def answered(work: Callable[[], Any], wake: bool = False) -> JSONResponse:
        result = await run_in_threadpool(work)
        if wake and wake_sender is not None:
            wake_sender()  # the customer should see the agent's words now, not at the next tick
        return JSONResponse(result, headers={"Cache-Control": "no-store"})

    @router.get("/api/handoffs")
    async def list_handoffs(status: Literal["waiting", "active", "closed"] | None = None,
                            language: str | None = None,
                            who: AgentSession = who_is_in) -> JSONResponse:
        """The agent's queue: their languages only."""
        allowed = list(who.languages or LANGUAGES)
        languages = [language] if language in allowed else [] if language else allowed

        def work() -> list[dict[str, Any]]:
            with transaction(sessions) as session:
                found = handoff_store.list_handoffs(
                    session, statuses=[status] if status else list(OPEN_HANDOFF),
                    languages=languages)
                return handoffs.summaries(session, services, handoffs=found)

        return await answered(work)

    @router.get("/api/handoffs/{handoff_id}")
    async def get_handoff(handoff_id: HandoffId, who: AgentSession = who_is_in) -> JSONResponse:
        """One handoff with its transcript and order."""

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                return one(session, mine(handoff_store.get_handoff(
                    session, handoff_id=handoff_id), who))

        return await answered(work)

    @router.post("/api/handoffs/{handoff_id}/claim")
    async def claim(handoff_id: HandoffId, who: AgentSession = who_is_in) -> JSONResponse:
        """Take the conversation as the logged-in agent."""

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                mine(handoff_store.get_handoff(session, handoff_id=handoff_id), who)
                handoff = handoffs.claim(session, services, handoff_id=handoff_id,
                                         agent=who.agent, now=services.clock())
                return one(session, handoff)

        return await answered(work, wake=True)

    @router.post("/api/handoffs/{handoff_id}/messages", status_code=202)
    async def send(handoff_id: HandoffId, body: MessageIn,
                   who: AgentSession = who_is_in) -> JSONResponse:
        """Answer the customer as the logged-in agent."""
        checked = AgentMessageIn(agent=who.agent, text=body.text)

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                mine(handoff_store.get_handoff(session, handoff_id=handoff_id), who)
                message_id = handoffs.send(session, services, handoff_id=handoff_id,
                                           agent=who.agent, text=checked.text,
                                           now=services.clock())
                return {"id": message_id, "status": "queued"}

        result = await answered(work, wake=True)
        result.status_code = 202
        return result

    @router.post("/api/handoffs/{handoff_id}/close")
    async def close(handoff_id: HandoffId, body: NoteIn,
                    who: AgentSession = who_is_in) -> JSONResponse:
        """Hand the chat back to the bot."""
        checked = CloseIn(agent=who.agent, note=body.note)

        def work() -> dict[str, Any]:
            with transaction(sessions) as session:
                mine(handoff_store.get_handoff(session, handoff_id=handoff_id), who)
                handoff = handoffs.close(session, services, handoff_id=handoff_id,
                                         agent=who.agent, note=checked.note,
                                         now=services.clock())
                return one(session, handoff)

        return await answered(work, wake=True)

    return router
