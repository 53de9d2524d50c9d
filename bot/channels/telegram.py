"""The Telegram edge: updates in, plain values to the dialogue, replies out as messages."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict, defaultdict, deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from bot import chats
from bot.channels.base import Blocked, TryLater
from bot.pace import Pace, pace_for
from bot.services import Services
from bot.turns import chat_state, handle_chat
from dialogues import linking
from dialogues.model import ButtonPress, Reply, TextMessage
from nlu.client import NluClient
from storage.chats import mark_unreachable
from storage.db import transaction
from storage.pacing import Taken, earlier_pending, finish_update, forget_updates, take_update

log = logging.getLogger(__name__)
Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]
WEBHOOK_PATH = "/telegram/webhook"
RESEND_AFTER_SECONDS = 0.2
REPLY_RETRIES = 3  # a reply Telegram refused with 429 is sent again after its pause
# A chat's update waits this long at most for the one before it (on another replica) to be
# answered; one taken longer ago than ORDER_HORIZON is a dead replica's, not waited for.
ORDER_WAIT_SECONDS = 10.0
ORDER_HORIZON = timedelta(minutes=2)
ORDER_POLL_SECONDS = 0.05
# An update taken this long ago and still unanswered was a dead replica's: Telegram's next
# delivery of it is handled (a live turn ends within the NLU's and the database's timeouts).
UPDATE_TAKEOVER = timedelta(seconds=20)
FORGET_UPDATES_EVERY = 1_000  # webhook updates between two clean-ups of the taken ones


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """Turn the reply's buttons into an inline keyboard (the only place that knows one)."""
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.title, callback_data=b.payload)
                                  for b in row] for row in reply.buttons])


class RecentLanguages:
    """The language each recent chat spoke last: the NLU's prior, without a database read.

    Only a prior: a stale entry (another worker's turn, a push) costs nothing but the prior.
    """

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._languages: OrderedDict[int, str] = OrderedDict()

    def get(self, chat_id: int) -> str | None:
        """Return the chat's last language, if this process saw it."""
        return self._languages.get(chat_id)

    def forget(self, chat_id: int) -> None:
        """Drop what is known of a chat (its data was deleted)."""
        self._languages.pop(chat_id, None)

    def remember(self, chat_id: int, language: str) -> None:
        """Note the chat's language; forget the least recent chat beyond the size."""
        self._languages[chat_id] = language
        self._languages.move_to_end(chat_id)
        if len(self._languages) > self.size:
            self._languages.popitem(last=False)


@dataclass
class ChatLocks:
    """One lock per chat: updates of a chat run in order, different chats concurrently."""

    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    _users: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))

    @asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        """Hold the chat's lock; forget it when nobody waits (no growth with chats ever seen)."""
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        self._users[chat_id] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[chat_id] -= 1
            if self._users[chat_id] == 0:
                del self._users[chat_id]
                self._locks.pop(chat_id, None)


class TelegramBot:
    """The python-telegram-bot application, wired to the dialogue."""

    def __init__(self, services: Services, nlu: NluClient, *,
                 request: BaseRequest | None = None) -> None:
        self.services = services
        self.nlu = nlu
        self.locks = ChatLocks()
        self.languages = RecentLanguages()
        # Seconds from an update reaching its handler to the reply sent (benchmarks read it).
        self.handled: deque[float] = deque(maxlen=100_000)
        settings = services.settings.telegram
        # Updates of different chats run concurrently; ChatLocks keeps each chat in order.
        builder: Any = ApplicationBuilder().token(
            settings.token.get_secret_value()).concurrent_updates(256)
        # The bot's messages, replies and pushes of every replica, go out at one pace.
        self.pace: Pace | None = pace_for(
            services.engine, per_second=settings.api_requests_per_second,
            per_chat_seconds=settings.per_chat_seconds,
        ) if settings.api_requests_per_second > 0 else None
        self.ordered = settings.mode == "webhook"  # replicas: a chat's updates in its order
        self._taken = 0
        self._answered: dict[int, bool] = {}  # webhook updates a handler marked answered
        if settings.mode == "webhook":
            builder = builder.updater(None)
        if settings.base_url:
            base = settings.base_url.rstrip("/")
            builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
        if request is not None:
            builder = builder.request(request).get_updates_request(request)
        else:
            # Two: on a stop, the updater's last get_updates must not wait for the long poll's
            # connection (a pool timeout there is logged as an error with its traceback).
            builder = builder.get_updates_connection_pool_size(2)
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self._register()

    def _register(self) -> None:
        app = self.application
        private = filters.ChatType.PRIVATE
        app.add_handler(CommandHandler("start", self._guard(self.on_start), filters=private))
        app.add_handler(CommandHandler("stop", self._guard(self.on_stop), filters=private))
        app.add_handler(CommandHandler("delete", self._guard(self.on_delete), filters=private))
        app.add_handler(CommandHandler("language", self._guard(self.on_language),
                                       filters=private))
        app.add_handler(CommandHandler("help", self._guard(self.on_help), filters=private))
        # Any other text, an unknown command included ("/status" reads as "status"). An edited
        # message is not a new one: answering it again could repeat a booking or a cancellation.
        app.add_handler(MessageHandler(private & filters.TEXT & filters.UpdateType.MESSAGE,
                                       self._guard(self.on_text)))
        app.add_handler(CallbackQueryHandler(self._guard(self.on_button)))
        app.add_handler(MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL,
                                       self._guard(self.on_other)))
        app.add_handler(MessageHandler(~private & (filters.TEXT | filters.COMMAND),
                                       self._guard(self.on_group)))
        app.add_handler(ChatMemberHandler(self._guard(self.on_blocked),
                                          ChatMemberHandler.MY_CHAT_MEMBER))
        app.add_error_handler(self.on_error)

    def _guard(self, handler: Handler) -> Handler:
        """Run the handler under the chat's lock and count the update."""

        async def guarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            chat = update.effective_chat
            if chat is None:
                return
            started = asyncio.get_running_loop().time()
            async with self.locks.hold(chat.id):
                if self.ordered:
                    await self._wait_for_earlier(f"tg:{chat.id}", update.update_id)
                try:
                    await handler(update, context)
                finally:
                    if self.ordered:
                        await run_in_threadpool(self._finish_update, f"tg:{chat.id}",
                                                update.update_id)
                        self._answered[update.update_id] = True
            took = asyncio.get_running_loop().time() - started
            self.handled.append(took)
            self.services.metrics.updates.labels(handler.__name__).inc()
            self.services.metrics.reply_seconds.observe(took)

        guarded.__name__ = handler.__name__
        return guarded

    # Handlers -----------------------------------------------------------------------------

    @staticmethod
    def _key(update: Update) -> str:
        assert update.effective_chat is not None
        return f"tg:{update.effective_chat.id}"

    @staticmethod
    def _hint(update: Update) -> str | None:
        user = update.effective_user
        return (user.language_code or "")[:2] if user and user.language_code else None

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Link the chat with a deep-link token, or greet an already linked chat."""
        token = context.args[0] if context.args else None
        assert update.effective_chat is not None
        replies = await run_in_threadpool(
            chats.start, self.services, chat_key=self._key(update),
            telegram_chat_id=update.effective_chat.id, token=token, language=self._hint(update))
        await self.send(update.effective_chat.id, replies)

    async def on_stop(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Turn pushes off."""
        assert update.effective_chat is not None
        replies = await run_in_threadpool(chats.stop, self.services, chat_key=self._key(update))
        await self.send(update.effective_chat.id, replies)

    async def on_delete(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Ask before forgetting the chat."""
        assert update.effective_chat is not None
        replies = await run_in_threadpool(chats.ask_delete, self.services,
                                          chat_key=self._key(update))
        await self.send(update.effective_chat.id, replies)

    async def on_language(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Offer the five languages (as the dialogue's language button)."""
        await self._dialogue(update, ButtonPress("m:language"))

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what the bot can do."""
        await self._dialogue(update, ButtonPress("m:help"))

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Free text: through the NLU to the dialogue, or identification when unlinked."""
        assert update.effective_message is not None and update.effective_chat is not None
        text = update.effective_message.text or ""
        if text.startswith("/"):  # an unknown command: its words are the message
            command, _, rest = text[1:].partition(" ")
            text = f"{command.split('@', 1)[0]} {rest}".strip() or text
        chat_id = update.effective_chat.id
        # The conversation's language is the NLU's prior: remembered from this chat's last
        # turn, else read (the first message since this process started).
        language = self.languages.get(chat_id)
        linked = True
        if language is None:
            state = await run_in_threadpool(chat_state, self.services, chat_key=self._key(update))
            language, linked = state.language, state.order_id is not None
        if linked:
            parsed = await self.nlu.parse(text, current_language=language,
                                          hint=self._hint(update))
            linked = await self._dialogue(update, TextMessage(text, parsed))
        if not linked:  # the text is the order number and postal code
            replies = await run_in_threadpool(
                chats.identify, self.services, chat_key=self._key(update),
                telegram_chat_id=chat_id, text=text, language=self._hint(update))
            await self.send(chat_id, replies)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button: checked against the server-side offer; the pressed keyboard goes away."""
        query = update.callback_query
        assert query is not None and update.effective_chat is not None
        with suppress(TelegramError):
            await query.answer()
        data = (query.data or "")[:64]
        key, chat_id = self._key(update), update.effective_chat.id
        if data.startswith("o:"):
            replies = await run_in_threadpool(chats.choose_order, self.services, chat_key=key,
                                              number=data[2:])
        elif data.startswith("d:"):
            replies = await run_in_threadpool(chats.delete, self.services, chat_key=key,
                                              confirmed=data == "d:yes")
            if data == "d:yes":
                self.languages.forget(chat_id)
        else:
            replies = None
        if query.message is not None:
            # A second tap on the same message then does nothing.
            with suppress(TelegramError):
                await query.edit_message_reply_markup(reply_markup=None)
        if replies is not None:
            await self.send(chat_id, replies)
            return
        await self._dialogue(update, ButtonPress(data))

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Photos, stickers, voice: the bot reads text only."""
        assert update.effective_chat is not None
        t = chats.texts_before_order(self.services, await self._language(update))
        await self.send(update.effective_chat.id, [linking.only_text(t)])

    async def on_group(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The bot was added to a group: it only works privately (and shows no order there)."""
        assert update.effective_chat is not None
        t = chats.texts_before_order(self.services, self._hint(update) or "de")
        await self.send(update.effective_chat.id, [linking.private_only(t)])

    async def on_blocked(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The customer blocked (or unblocked) the bot: stop (or resume) the pushes at once."""
        member = update.my_chat_member
        assert member is not None
        if member.chat.type != "private":
            return
        blocked = member.new_chat_member.status in ("kicked", "left")
        await run_in_threadpool(self._mark_unreachable, member.chat.id, blocked)

    async def _language(self, update: Update) -> str:
        state = await run_in_threadpool(chat_state, self.services, chat_key=self._key(update))
        return state.language or self._hint(update) or "de"

    async def _dialogue(self, update: Update, incoming: TextMessage | ButtonPress) -> bool:
        """Run the turn and send its replies; False when the chat is linked to no order."""
        assert update.effective_chat is not None
        chat_id = update.effective_chat.id
        turn = await handle_chat(self.services, chat_key=self._key(update), incoming=incoming,
                                 fallback_language=self._hint(update) or "de")
        if turn is None:
            if isinstance(incoming, ButtonPress):
                t = chats.texts_before_order(self.services, await self._language(update))
                await self.send(chat_id, [linking.ask_for_order(t)])
            return False
        self.languages.remember(chat_id, turn.language)
        await self.send(chat_id, turn.replies)
        return True

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log with the traceback and the update id; answer the customer in their language."""
        update_id = update.update_id if isinstance(update, Update) else None
        self.services.metrics.errors.labels("telegram").inc()
        log.error("error handling update %s: %s", update_id, type(context.error).__name__,
                  exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            with suppress(Exception):
                t = chats.texts_before_order(self.services, await self._language(update))
                await self.send(update.effective_chat.id, [linking.something_went_wrong(t)])

    # Sending ------------------------------------------------------------------------------

    async def send(self, chat_id: int, replies: list[Reply] | tuple[Reply, ...]) -> None:
        """Send replies in order; a chat that blocked the bot is marked unreachable."""
        for reply in replies:
            try:
                await self._send_one(chat_id, reply)
            except Forbidden:
                log.info("chat %s blocked the bot; no more pushes to it", chat_id)
                await run_in_threadpool(self._mark_unreachable, chat_id)
                return
            except RetryAfter:
                raise  # the rate limiter already retried; let the error handler log it
            except BadRequest:
                log.warning("Telegram refused a message to chat %s", chat_id, exc_info=True)

    async def paced(self, chat_id: int, *, only_if_idle: bool = False) -> None:
        """Wait for the chat's and the bot's next moment to send (pushes after replies)."""
        if self.pace is not None:
            await self.pace.wait(f"tg:{chat_id}", only_if_idle=only_if_idle)

    async def hold(self, refused: RetryAfter) -> float:
        """Hold every replica's sends for Telegram's retry_after; return its seconds."""
        after = refused.retry_after
        seconds = float(after.total_seconds() if isinstance(after, timedelta) else after)
        self.services.metrics.throttled.inc()
        if self.pace is not None:
            await self.pace.pause(seconds)
        return seconds

    async def _send_one(self, chat_id: int, reply: Reply) -> None:
        """Send one reply at the bot's pace; after a 429 it waits its pause and goes again."""
        for attempt in range(REPLY_RETRIES + 1):
            await self.paced(chat_id)
            try:
                await self._post(chat_id, reply)
                return
            except RetryAfter as refused:
                seconds = await self.hold(refused)
                if attempt == REPLY_RETRIES:
                    raise
                if self.pace is None:
                    await asyncio.sleep(seconds)

    async def _post(self, chat_id: int, reply: Reply) -> None:
        """Send one message; a connection that broke before an answer is tried once more."""
        try:
            await self.application.bot.send_message(chat_id, reply.text,
                                                    reply_markup=keyboard(reply))
        except TimedOut:
            raise  # it may have arrived: sending again could say it twice
        except NetworkError as error:
            if isinstance(error, RetryAfter):
                raise
            # A kept-alive connection the other side had just closed: the request never
            # reached Telegram, and the customer is owed the reply.
            await asyncio.sleep(RESEND_AFTER_SECONDS)
            await self.paced(chat_id)
            await self.application.bot.send_message(chat_id, reply.text,
                                                    reply_markup=keyboard(reply))

    # Order across replicas -----------------------------------------------------------------

    def _take_update(self, chat_key: str, update_id: int) -> Taken:
        with transaction(self.services.sessions) as session:
            now = self.services.clock()
            taken = take_update(session, chat_key=chat_key, update_id=update_id, now=now,
                                stale_before=now - UPDATE_TAKEOVER)
            self._taken += 1
            if self._taken % FORGET_UPDATES_EVERY == 0:
                forget_updates(session, before=now - timedelta(days=1))
            return taken

    def _earlier_pending(self, chat_key: str, update_id: int) -> bool:
        with transaction(self.services.sessions) as session:
            since = self.services.clock() - ORDER_HORIZON
            return earlier_pending(session, chat_key=chat_key, update_id=update_id,
                                   since=since)

    def _finish_update(self, chat_key: str, update_id: int) -> None:
        with transaction(self.services.sessions) as session:
            finish_update(session, chat_key=chat_key, update_id=update_id,
                          now=self.services.clock())

    async def _wait_for_earlier(self, chat_key: str, update_id: int) -> None:
        """Let the chat's earlier update, taken by another replica, be answered first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ORDER_WAIT_SECONDS
        while await run_in_threadpool(self._earlier_pending, chat_key, update_id):
            if loop.time() > deadline:
                log.warning("%s: update %s went ahead of an earlier one still unanswered",
                            chat_key, update_id)
                return
            await asyncio.sleep(ORDER_POLL_SECONDS)

    def _mark_unreachable(self, chat_id: int, unreachable: bool = True) -> None:
        with transaction(self.services.sessions) as session:
            mark_unreachable(session, telegram_chat_id=chat_id, unreachable=unreachable)

    # Running ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling, or register the webhook with its secret."""
        settings = self.services.settings.telegram
        await self.application.initialize()
        await self.application.start()
        with suppress(TelegramError):
            t = chats.texts_before_order(self.services, "de")
            await self.application.bot.set_my_commands(linking.commands_help(t))
        if settings.mode == "webhook":
            secret = self.services.settings.require_webhook_secret()
            await self.application.bot.set_webhook(
                url=settings.webhook_url.rstrip("/") + WEBHOOK_PATH, secret_token=secret,
                allowed_updates=Update.ALL_TYPES)
            log.info("Telegram: webhook registered at %s", settings.webhook_url)
        else:
            assert self.application.updater is not None
            await self.application.updater.start_polling(
                allowed_updates=Update.ALL_TYPES, poll_interval=settings.poll_interval_seconds)
            log.info("Telegram: polling")

    async def stop(self) -> None:
        """Stop polling and the application."""
        if self.application.updater is not None and self.application.updater.running:
            await self.application.updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    async def webhook(self, request: Request) -> Response:
        """Take an update Telegram posted; refuse a request without the right secret."""
        expected = self.services.settings.require_webhook_secret().encode()
        given = request.headers.get("x-telegram-bot-api-secret-token", "").encode()
        if not secrets.compare_digest(given, expected):
            return JSONResponse({"detail": "wrong secret token"}, status_code=403)
        try:
            update = Update.de_json(await request.json(), self.application.bot)
        except Exception:
            return JSONResponse({"detail": "not a Telegram update"}, status_code=400)
        chat = update.effective_chat
        key = f"tg:{chat.id}" if chat is not None else None
        if key is not None:
            try:
                taken = await run_in_threadpool(self._take_update, key, update.update_id)
            except Exception:
                log.warning("could not note update %s; Telegram will send it again",
                            update.update_id, exc_info=True)
                return JSONResponse({"detail": "database unavailable"}, status_code=503)
            if taken is Taken.DONE:  # Telegram sent it again (our answer was lost)
                return Response(status_code=200)
            if taken is Taken.BUSY:  # another replica is answering it: Telegram asks again
                return JSONResponse({"detail": "being answered"}, status_code=503)
        # Telegram hears 200 once the update was handled: one that a replica killed mid-turn
        # had taken is sent again by Telegram and taken over, not lost.
        try:
            await self.application.process_update(update)
        finally:
            if key is not None and not self._answered.pop(update.update_id, False):
                await run_in_threadpool(self._finish_update, key, update.update_id)
        return Response(status_code=200)


class TelegramChannel:
    """Pushes to Telegram chats: 429 and network trouble mean later, Forbidden means never."""

    prefix = "tg:"

    def __init__(self, bot: TelegramBot) -> None:
        self.bot = bot

    async def deliver(self, chat_key: str, telegram_chat_id: int | None,
                      replies: tuple[Reply, ...]) -> None:
        """Send the push's messages to the chat."""
        if telegram_chat_id is None:
            raise Blocked("the chat has no Telegram id")
        for reply in replies:
            await self.bot.paced(telegram_chat_id, only_if_idle=True)
            try:
                await self.bot.application.bot.send_message(telegram_chat_id, reply.text,
                                                            reply_markup=keyboard(reply))
            except RetryAfter as exc:
                raise TryLater("429 Too Many Requests", await self.bot.hold(exc)) from exc
            except Forbidden as exc:
                raise Blocked("the customer blocked the bot") from exc
            except BadRequest as exc:
                raise Blocked(f"Telegram refused the message: {exc.message}") from exc
            except NetworkError as exc:  # timeouts, 5xx, connection errors
                raise TryLater(type(exc).__name__) from exc
