"""The Slack adapter: slack-bolt's AsyncApp in socket mode or on ``POST /slack/events`` (http mode).

An event is acknowledged once it is recorded in the inbox (Slack does not deliver an acknowledged event
again, so a crash after the acknowledgement must not lose it) and answered in the background, one answer
after the other within a conversation (a DM's top level, a thread in a DM, or a channel thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.answer import AnswerWriter
from adapters.slack.assistant import AssistantPanel
from adapters.slack.errors import error_code
from adapters.slack.feedback import FEEDBACK_ACTION, clicked_vote
from adapters.slack.files import download_all, resolve
from adapters.slack.history import HistoryReader
from adapters.slack.home import FORGET_ACTION, HomeTab, forget_job
from adapters.slack.normalize import (
    SUMMARY_SHORTCUT,
    Job,
    normalize_command,
    normalize_event,
    normalize_shortcut,
)
from adapters.slack.summaries import with_read_context
from adapters.slack.users import UserDirectory
from adapters.slack.verify import refusal
from bot.domain import ANSWER_MESSAGE, AdminAlert, FollowUp, Incoming, Platform
from bot.i18n import pick_language, text
from bot.observability.logs import get_logger
from bot.sequencer import LocalSequencer

if TYPE_CHECKING:
    from adapters.base import AdapterDeps
    from bot.config import SlackSettings
    from bot.engine import Engine

log = get_logger(__name__)

EVENTS_PATH: Final = "/slack/events"
_THREAD_CACHE: Final = 10_000


def _drop_token_warning(record: logging.LogRecord) -> bool:
    # Bolt reads SLACK_BOT_TOKEN from the environment and then warns that our client's token wins.
    return "`token` will be unused" not in record.getMessage()


async def _acknowledge(ack: AsyncAck) -> None:
    await ack()


class SlackAdapter:
    """Slack through Bolt: events in, rendered answers out."""

    name = "slack"

    def __init__(self, deps: AdapterDeps[SlackSettings]) -> None:
        settings = deps.settings
        self._settings = settings
        self._media = deps.media
        self._reconnects = deps.metrics.adapter_reconnects.labels(self.name)
        self._engine = deps.engine
        self.default_language = deps.language
        self._clock = deps.clock
        self._http_mode = settings.mode == "http"
        token = settings.bot_token.get_secret_value() if settings.bot_token is not None else ""
        # Older slack_sdk releases (the pin allows 3.33) join method names onto the base URL as given:
        # without the slash, ".../api" + "auth.test" would become ".../auth.test".
        base_url = settings.base_url if settings.base_url.endswith("/") else settings.base_url + "/"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.client = AsyncWebClient(
            token=token,
            base_url=base_url,
            session=self._session,
            timeout=30,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                AsyncRateLimitErrorRetryHandler(max_retry_count=settings.max_retries),
            ],
        )
        # For calls that may be skipped (progress edits, status): a 429 there must not hold up the answer.
        self.optional_client = AsyncWebClient(
            token=token, base_url=base_url, session=self._session, timeout=30, retry_handlers=[]
        )
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret is not None else ""
        self._signing_secret = secret
        bolt_logger = logging.getLogger("slack_bolt.gembot")
        bolt_logger.addFilter(_drop_token_warning)
        self.bolt = AsyncApp(
            client=self.client,
            signing_secret=secret or "unused-in-socket-mode",
            # handle_http checks the signature before Bolt parses anything; socket mode needs none.
            request_verification_enabled=False,
            process_before_response=True,  # the listeners record the event before it is acknowledged
            logger=bolt_logger,
        )
        self._users = UserDirectory(self.client, self._clock)
        self._language = deps.language
        self._history = HistoryReader(self.client, self._users)
        self._panel = AssistantPanel(
            client=self.client,
            optional_client=self.optional_client,
            users=self._users,
            settings=settings,
            language=deps.language,
            bot_user_id=lambda: self._bot_user_id,
        )
        self._home = HomeTab(deps.engine, deps.clock, f"{settings.slash_command} ")
        self.bolt.use(self._only_our_workspace)
        # Bolt's assistant middleware takes every DM message in a thread: answered as before.
        self.bolt.assistant(self._panel.middleware(self._on_assistant_message))
        self.bolt.event("app_mention")(self._on_event)
        self.bolt.event("message")(self._on_event)
        self.bolt.event("app_home_opened")(self._on_home_opened)
        self.bolt.command(settings.slash_command)(self._on_command)
        self.bolt.action(FEEDBACK_ACTION)(self._on_feedback)
        self.bolt.shortcut(SUMMARY_SHORTCUT)(self._on_shortcut)
        self.bolt.action(FORGET_ACTION)(self._on_forget)
        # Other buttons, shortcuts and modals are not ours to answer, but each needs its acknowledgement.
        anything = re.compile(".*")
        for register in (self.bolt.action, self.bolt.shortcut, self.bolt.view):
            register(anything)(_acknowledge)
        self._team_id = settings.team_id or ""
        self._enterprise_id = ""
        self._socket: AsyncSocketModeHandler | None = None
        self._connector: asyncio.Task[None] | None = None
        self._bot_user_id = ""
        self._bot_id = ""
        self._problem: str | None = "not started"
        self._stopping = False
        self._tails: dict[tuple[str, str], asyncio.Event] = {}
        self._arriving = LocalSequencer()
        self._tasks: set[asyncio.Task[None]] = set()
        self._threads: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.native_streaming = settings.stream
        self.status_available = True
        if self._http_mode:
            deps.routes.add_route("POST", EVENTS_PATH, self.handle_http)
        self._unsubscribe_alerts = deps.alerts.subscribe(self.deliver_alert)

    @property
    def engine(self) -> Engine:
        """The engine this adapter answers through."""
        return self._engine

    # -- lifecycle

    async def start(self) -> None:
        """Learn who we are (auth.test) and, in socket mode, connect; retried in the background."""
        self._stopping = False
        self._connector = asyncio.create_task(self._connect(), name="slack-connect")

    async def _connect(self) -> None:
        delay = 1.0
        while not self._stopping:
            try:
                auth = await self.client.auth_test()
                self._bot_user_id = str(auth.get("user_id") or "")
                self._bot_id = str(auth.get("bot_id") or "")
                self._team_id = self._settings.team_id or str(auth.get("team_id") or "")
                self._enterprise_id = str(auth.get("enterprise_id") or "")
                break
            except SlackApiError as exc:
                self._problem = f"auth.test failed: {error_code(exc) or 'error'}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self._problem = f"auth.test failed: {exc.__class__.__name__}"
            log.warning("slack.auth_failed", reason=self._problem, retry_in_s=delay)
            self._count_reconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
        if self._http_mode:
            self._problem = None
            log.info("slack.ready", mode="http", bot_user_id=self._bot_user_id)
            return
        app_token = self._settings.app_token.get_secret_value() if self._settings.app_token else ""
        self._problem = "socket mode: connecting"
        self._socket = AsyncSocketModeHandler(
            self.bolt, app_token, logger=logging.getLogger("slack_sdk.gembot")
        )
        # slack_sdk reconnects by itself when Slack closes the WebSocket; count each time it does.
        self._socket.client.on_close_listeners.append(self._on_socket_close)
        await self._socket.connect_async()  # type: ignore[no-untyped-call]
        self._problem = None
        log.info("slack.ready", mode="socket", bot_user_id=self._bot_user_id)

    async def _on_socket_close(self, _message: object) -> None:
        if not self._stopping:
            log.info("slack.socket_reconnected")
            self._count_reconnect()

    def _count_reconnect(self) -> None:
        self._reconnects.inc()

    async def follow_up(self, item: FollowUp) -> None:
        """Answer a message a dead process never answered: in its thread, or in a thread under it.

        The half-written answer the dead process left (a "…" placeholder, a cut stream) becomes the
        notice; when it cannot be edited any more, the notice is posted as a new message.
        """
        answer_ts = item.reply_ids.get(ANSWER_MESSAGE)
        try:
            if answer_ts and await self._end_answer(item.chat_key, answer_ts, item.notice.text):
                return
            thread_ts = item.reply_ids.get("thread_ts") or item.reply_ids.get("ts") or None
            await self.client.chat_postMessage(
                channel=item.chat_key, thread_ts=thread_ts, text=item.notice.text
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack.follow_up_failed", error=exc.__class__.__name__)

    async def _end_answer(self, channel: str, ts: str, notice: str) -> bool:
        """Turn a half-written answer into ``notice``: replace a placeholder or edited message; end a
        native stream (still open: nobody stopped it) with the notice after what it already showed."""
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=notice)
            return True
        except SlackApiError as exc:
            log.info("slack.follow_up_edit_failed", error=error_code(exc))
        try:
            await self.client.chat_stopStream(channel=channel, ts=ts, markdown_text=f"\n\n_{notice}_")
            return True
        except SlackApiError as exc:
            log.info("slack.follow_up_stop_failed", error=error_code(exc))
        return False

    async def deliver_alert(self, alert: AdminAlert) -> None:
        """Send an operator alert to every configured admin as a direct message from the bot."""
        for admin_id in self._settings.admin_ids:
            try:
                await self.client.chat_postMessage(channel=admin_id, text=alert.text)
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("slack.alert_failed", admin_id=admin_id, error=exc.__class__.__name__)

    async def ready(self) -> str | None:
        """None when Slack knows us (and, in socket mode, the WebSocket is up), else why not."""
        if self._problem is not None:
            return self._problem
        if self._socket is not None and not await self._socket.client.is_connected():
            return "socket mode: disconnected"
        return None

    async def stop(self, grace: float) -> None:
        """Take no new events, let answers in flight finish (up to ``grace`` seconds), disconnect."""
        self._stopping = True
        self._unsubscribe_alerts()
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._session.close()

    # -- inbound

    async def handle_http(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: the signature and timestamp are checked on the raw bytes before
        anything is parsed (401), a body Bolt cannot parse is refused (400); Bolt acknowledges the rest."""
        if self._stopping:
            # Not acknowledged, so Slack delivers it again (to another replica or after the restart).
            return web.Response(status=503, text="shutting down")
        body = await request.read()
        reason = refusal(self._signing_secret, request.headers, body)
        if reason is not None:
            log.info("slack.request_refused", reason=reason, bytes=len(body))
            return web.Response(status=401, text="unauthorized\n")
        try:
            bolt_request = await to_bolt_request(request)
        except Exception:  # whatever a malformed body provokes (bad JSON or UTF-8, too deep, not a dict)
            log.info("slack.request_refused", reason="malformed", bytes=len(body))
            return web.Response(status=400, text="malformed\n")
        response = await self.bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    async def _only_our_workspace(
        self, context: AsyncBoltContext, body: dict[str, Any], next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Bolt middleware: events and commands of another app or workspace are acknowledged, not answered
        (another status would make Slack retry them, and in the end disable the request URL)."""
        app_id = body.get("api_app_id")
        if self._settings.app_id and app_id and app_id != self._settings.app_id:
            log.info("slack.request_refused", reason="other_app", app_id=str(app_id))
            return BoltResponse(status=200, body="")
        team_id = context.team_id
        if team_id and not self._team_id:
            # auth.test has not answered yet: Slack delivers it again later.
            return BoltResponse(status=503, body="starting")
        ours = team_id == self._team_id or (
            bool(self._enterprise_id) and context.enterprise_id == self._enterprise_id
        )
        if team_id and not ours:
            log.info("slack.request_refused", reason="other_workspace", team_id=team_id)
            return BoltResponse(status=200, body="")
        await next_()
        return None

    async def _on_event(self, body: dict[str, Any], context: AsyncBoltContext) -> BoltResponse | None:
        job = normalize_event(
            body,
            context.bot_user_id or self._bot_user_id,
            context.bot_id or self._bot_id,
            media=self._media.enabled,
        )
        return None if job is None else await self.arrive(job)

    async def _on_assistant_message(
        self, body: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        job = normalize_event(
            body,
            context.bot_user_id or self._bot_user_id,
            context.bot_id or self._bot_id,
            media=self._media.enabled,
        )
        return None if job is None else await self.arrive(replace(job, assistant=True))

    async def _on_command(self, ack: AsyncAck, body: dict[str, Any]) -> BoltResponse | None:
        return await self._arrive_then_ack(normalize_command(body), ack)

    async def _on_shortcut(self, ack: AsyncAck, body: dict[str, Any]) -> BoltResponse | None:
        return await self._arrive_then_ack(normalize_shortcut(body), ack)

    async def _on_forget(self, ack: AsyncAck, body: dict[str, Any]) -> BoltResponse | None:
        return await self._arrive_then_ack(forget_job(body), ack)

    async def _arrive_then_ack(self, job: Job | None, ack: AsyncAck) -> BoltResponse | None:
        if job is not None and (refused := await self.arrive(job)) is not None:
            return refused
        await ack()
        return None

    async def _on_home_opened(self, event: dict[str, Any]) -> None:
        """Publish the user's home tab each time they open it (their use changes between visits)."""
        user, dm = str(event.get("user") or ""), str(event.get("channel") or "")
        if event.get("tab") != "home" or not user:
            return
        await self._publish_home(user, dm)

    async def _publish_home(self, user: str, dm: str) -> None:
        _name, locale = await self._users.lookup(user)
        try:
            view = await self._home.view(user, dm, pick_language(locale, self._language))
            await self.client.views_publish(user_id=user, view=view)
        except Exception as exc:  # the store or Slack: the tab stays as it was
            log.warning("slack.home_failed", error=exc.__class__.__name__)

    async def arrive(self, job: Job) -> BoltResponse | None:
        """Record ``job`` in the inbox, then queue it; a 503 to answer instead of the acknowledgement
        when it could not be recorded (Slack delivers it again) or the adapter is stopping.

        One conversation's jobs are recorded and queued one at a time, so their order in the queue is
        that of their inbox rows. A thread reply without a mention is recorded at its turn, once it is
        known to be for the bot.
        """
        if self._stopping:
            return BoltResponse(status=503, body="shutting down")
        async with self._arriving.hold(job.key):
            accepted = False
            if not job.needs_membership:
                try:
                    accepted = await self._engine.accept(job.incoming)
                except Exception as exc:
                    log.warning(
                        "slack.inbox_unavailable", error=exc.__class__.__name__, detail=str(exc)[:200]
                    )
                    return BoltResponse(status=503, body="not recorded")
            self.enqueue(job, accepted)
        return None

    def enqueue(self, job: Job, accepted: bool) -> None:
        """Queue ``job`` (``accepted``: recorded by this delivery) behind the answers of its conversation."""
        if self._stopping:
            log.warning("slack.dropped_on_shutdown", event_id=job.incoming.event_id)
            return
        previous = self._tails.get(job.key)
        done = asyncio.Event()
        self._tails[job.key] = done
        task = asyncio.create_task(
            self._process(job, accepted, previous, done), name=f"slack-answer-{job.incoming.event_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(
        self, job: Job, accepted: bool, previous: asyncio.Event | None, done: asyncio.Event
    ) -> None:
        try:
            if previous is not None:
                await previous.wait()
            if job.incoming.addressed_to_bot and not job.incoming.is_private:
                # The thread becomes the bot's at this message's turn, not at its arrival: a reply without
                # a mention sent just before it in the same thread is judged without it.
                self._remember_thread(job.key)
                if accepted:
                    await self._claim_thread(job)
            if not job.needs_membership and not accepted:
                return  # a duplicate delivery: answered already (its turn passed on in order all the same)
            incoming = await self._complete(job)
            if incoming is not None:
                status = await self._status(job, incoming)
                async with self._engine.answering(incoming, accepted=accepted) as events:
                    if not await AnswerWriter(self, job, incoming, status).run(events):
                        self._engine.note_undelivered(incoming)
                if job.from_home:  # the tab the user is looking at shows what they just did
                    await self._publish_home(incoming.user_id, job.channel)
        except Exception:
            log.exception("slack.answer_failed", event_id=job.incoming.event_id)
        finally:
            done.set()
            if self._tails.get(job.key) is done:
                del self._tails[job.key]

    async def _on_feedback(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """A 👍/👎 click under an answer: the user's vote on it, thanked in an ephemeral message."""
        await ack()
        click = clicked_vote(body)
        if click is None:
            return
        channel, ts, user, vote = click
        if not await self._engine.record_vote(Platform.SLACK, channel, ts, user, vote):
            return
        _name, locale = await self._users.lookup(user)
        thread = (body.get("container") or {}).get("thread_ts") or (body.get("message") or {}).get(
            "thread_ts"
        )
        try:
            await self.client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=text(pick_language(locale, self.default_language), "feedback_thanks"),
                thread_ts=thread,
            )
        except SlackApiError as exc:
            log.info("slack.feedback_thanks_failed", error=error_code(exc))

    async def _complete(self, job: Job) -> Incoming | None:
        incoming = job.incoming
        if job.needs_membership:
            if not await self._in_bot_thread(job.key):
                return None
            incoming = replace(incoming, addressed_to_bot=True)
        name, language = await self._users.lookup(incoming.user_id)
        if job.files and await self._engine.admits(incoming):
            token = self._settings.bot_token.get_secret_value() if self._settings.bot_token else ""
            shared = await resolve(self.client, job.files)
            files = await download_all(self._session, token, shared, self._media.max_bytes)
            incoming = replace(incoming, attachments=files)
        incoming = replace(
            incoming,
            user_name=incoming.user_name or name,
            language=incoming.language or language,
            command_prefix=f"{self._settings.slash_command} ",
        )
        lang = pick_language(incoming.language, self._language)
        budget = self._engine.context_chars
        return await with_read_context(
            job, incoming, lang, history=self._history, panel=self._panel, budget=budget
        )

    async def _status(self, job: Job, incoming: Incoming) -> str:
        """The thread status while the answer is written; an assistant thread's first question names it."""
        lang = pick_language(incoming.language, self._language)
        if incoming.command is not None or job.thread_ts is None:
            return text(lang, "status_thinking")
        try:
            if job.assistant and not await self._engine.is_bot_thread(Platform.SLACK, *job.key):
                await self._panel.set_title(job.channel, job.thread_ts, incoming.text)
            searching = await self._engine.searches_web(Platform.SLACK, *job.key)
        except Exception:  # the store: the answer goes on, with the plain status
            log.warning("slack.status_lookup_failed", event_id=incoming.event_id, exc_info=True)
            searching = False
        return text(lang, "status_searching" if searching else "status_thinking")

    async def _claim_thread(self, job: Job) -> None:
        """Record a channel thread the bot was addressed in, for :meth:`_in_bot_thread` after a restart
        or on another replica (the conversation row would otherwise exist only once Gemini answered)."""
        channel, thread_key = job.key
        try:
            await self._engine.claim_thread(Platform.SLACK, channel, thread_key)
        except Exception:
            # Only follow-ups without a mention elsewhere depend on it: this answer goes on.
            log.warning("slack.thread_record_failed", event_id=job.incoming.event_id, exc_info=True)

    def _remember_thread(self, key: tuple[str, str]) -> None:
        self._threads[key] = None
        self._threads.move_to_end(key)
        while len(self._threads) > _THREAD_CACHE:
            self._threads.popitem(last=False)

    async def _in_bot_thread(self, key: tuple[str, str]) -> bool:
        if key in self._threads:
            self._threads.move_to_end(key)
            return True
        # After a restart, or when another replica took the mention, the database knows the thread.
        if await self._engine.is_bot_thread(Platform.SLACK, key[0], key[1]):
            self._remember_thread(key)
            return True
        return False

    @property
    def answering(self) -> int:
        """Events accepted and not answered yet (waiting for their turn or in progress)."""
        return len(self._tasks)

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session shared by the Web API client and response_url posts."""
        return self._session

    @property
    def update_interval(self) -> float:
        """Seconds between two updates of a streamed reply."""
        return self._settings.update_interval.total_seconds()


def build(deps: AdapterDeps[SlackSettings]) -> SlackAdapter:
    """The adapter for ``gembot run``; in http mode it mounts ``POST /slack/events`` on the routes."""
    return SlackAdapter(deps)
