"""Slack's answer writer: one answer as a native stream or placeholder-and-edits, split mrkdwn, and the
ephemeral replies of slash commands."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError

from adapters.slack.errors import CALL_ERRORS, UNAVAILABLE_ERRORS, error_code, reason
from adapters.slack.feedback import feedback_block, section_blocks
from adapters.slack.markup import MESSAGE_LIMIT, escape, render_chunks, split
from adapters.slack.normalize import Job
from adapters.slack.sources import ThoughtsOpening, sources_mrkdwn, thoughts_mrkdwn
from adapters.slack.status import ThreadStatus
from bot.domain import Delta, FinalAnswer, Incoming, Notice, NoticeKind, ReplyEvent, Sourcing, Typing
from bot.i18n import Language, pick_language
from bot.observability.logs import get_logger

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.engine import Engine

log = get_logger(__name__)

STATUS_TEXT: Final = "is thinking…"
PLACEHOLDER: Final = "…"
# chat.startStream/appendStream take at most 12,000 characters; a longer answer continues in a new message.
STREAM_LIMIT: Final = 11_000


class Connection(Protocol):
    """What an answer uses of the adapter: its clients and session, and what it learned Slack offers."""

    client: AsyncWebClient
    optional_client: AsyncWebClient  # for calls that may be skipped (progress edits, status)
    native_streaming: bool
    status_available: bool
    default_language: Language

    @property
    def engine(self) -> Engine: ...

    @property
    def session(self) -> aiohttp.ClientSession: ...

    @property
    def update_interval(self) -> float: ...


class AnswerWriter:
    """Renders one answer: native stream or placeholder-and-edits, split mrkdwn, ephemeral commands."""

    def __init__(self, adapter: Connection, job: Job, incoming: Incoming, status: str = STATUS_TEXT) -> None:
        self._adapter = adapter
        self._status = ThreadStatus(adapter, job.channel, job.thread_ts, status)
        self._client = adapter.client
        self._optional = adapter.optional_client
        self._job = job
        self._incoming = incoming
        self._channel = job.channel
        self._thread = job.thread_ts
        self._text = ""  # the reply so far, Markdown as Gemini wrote it
        self._offset = 0  # text before this index went out through a stream that broke
        self._messages: list[str] = []  # ts of the messages showing the reply (edits path)
        self._shown: list[str] = []
        self._native = adapter.native_streaming and job.thread_ts is not None
        self._stream_ts: str | None = None
        self._stream_size = 0
        self._streams: list[str] = []
        self._streamed = ""
        self._last_update = 0.0
        self._noted = False
        self._lost = False  # a message of the event being shown could not be posted
        self._thoughts: ThoughtsOpening | None = None
        self._final_answer = False  # the final answer (not a notice) is being shown: it gets the buttons

    async def run(self, events: AsyncIterator[ReplyEvent]) -> bool:
        """Show the events of the answer; False, at once, when its final text could not be shown.

        A failing Slack call on the way (status, progress) never stops the engine's stream; a refused
        final message (``channel_not_found``, ``not_in_channel``, ``is_archived``...) ends it undelivered.
        """
        async for event in events:
            terminal = isinstance(event, FinalAnswer | Notice)
            self._lost = False
            try:
                await self._on(event)
            except Exception:
                log.exception("slack.render_failed", event_id=self._incoming.event_id)
                self._lost = True
            if terminal and self._lost:
                log.warning("slack.answer_undelivered", event_id=self._incoming.event_id)
                await self._status.clear()
                return False
        await self._status.clear()
        return True

    async def _on(self, event: ReplyEvent) -> None:
        if isinstance(event, Typing):
            await self._typing()
        elif isinstance(event, Delta):
            self._text += event.text
            if not self._job.ephemeral:
                await self._progress()
        elif isinstance(event, FinalAnswer):
            if self._job.ephemeral:
                for chunk in _answer_chunks(render_chunks(event.text), event.notice, event.sourcing):
                    await self._ephemeral(chunk, mrkdwn=True)
            else:
                self._final_answer = True
                await self._finish(event.text, event.notice, event.sourcing)
        elif isinstance(event, Notice):
            private = self._incoming.command is not None or self._job.ephemeral
            # A shortcut on a channel the bot cannot read cannot be answered there either: privately.
            unreadable = event.kind is NoticeKind.UNREADABLE and bool(self._job.response_url)
            if private or unreadable:
                await self._ephemeral(event.text)
            else:
                await self._finish(self._text, event)

    async def _typing(self) -> None:
        if self._job.ephemeral:
            return  # nothing shows in the channel while a private answer is being written
        if await self._status.show():
            return
        if not self._native and not self._messages:
            await self._sync([PLACEHOLDER])

    async def _progress(self) -> None:
        now = time.monotonic()
        started = self._stream_ts is not None or bool(self._messages)
        if started and now - self._last_update < self._adapter.update_interval:
            return
        self._last_update = now
        if self._native and await self._stream(self._text[len(self._streamed) :]):
            return
        await self._sync(render_chunks(self._text[self._offset :]) or [PLACEHOLDER], optional=True)

    async def _finish(self, text: str, notice: Notice | None, sourcing: Sourcing | None = None) -> None:
        note = notice.text if notice is not None else ""
        if self._native and self._stream_ts is not None:
            # Sources and thoughts are mrkdwn lines the stream cannot take: they go through the edits.
            if text.startswith(self._streamed) and not sourcing:
                # On failure _stream leaves _offset after what the stream shows: the rest goes below.
                if await self._stream(text[len(self._streamed) :]):
                    if await self._end_stream(note):
                        return
                    self._offset = len(text)  # the stream shows all the text; the notice goes below
            else:
                # The final text is not what was streamed (e.g. a word masked): replace the messages.
                await self._stop_stream()
                self._messages, self._shown = list(self._streams), [""] * len(self._streams)
                self._offset = 0
        self._thoughts = ThoughtsOpening.of(sourcing) if self._offset == 0 else None
        chunks = _answer_chunks(render_chunks(text[self._offset :]), notice, sourcing, self._offset == 0)
        if not chunks and self._streamed and not self._messages:
            return  # a broken stream already shows everything: no "…" after it
        await self._sync(chunks or [PLACEHOLDER])
        if self._final_answer and self._messages and not self._lost:
            await self._offer_feedback(self._messages[-1], self._shown[-1])

    @property
    def _language(self) -> Language:
        return pick_language(self._incoming.language, self._adapter.default_language)

    async def _answer_shown(self) -> None:
        """Before the buttons appear: a click on them must find the answer."""
        shown = list(dict.fromkeys([*self._streams, *self._messages]))
        await self._adapter.engine.answer_shown(self._incoming, shown)

    async def _offer_feedback(self, ts: str, shown: str) -> None:
        """The feedback buttons under the answer's last message (the answer stays shown without them)."""
        await self._answer_shown()
        try:
            await self._client.chat_update(
                channel=self._channel,
                ts=ts,
                text=shown,
                blocks=[
                    *(self._thought_blocks(shown) or section_blocks(shown)),
                    feedback_block(self._language),
                ],
            )
        except SlackApiError as exc:
            log.info("slack.feedback_buttons_failed", error=error_code(exc))

    # -- native streaming

    async def _stream(self, text: str) -> bool:
        """Send ``text`` through chat.*Stream (rolling over to a new message when one is full).

        False when streaming failed: the caller shows the rest through messages and edits.
        """
        try:
            while text:
                if self._stream_ts is None:
                    piece, text = _cut(text, STREAM_LIMIT)
                    response = await self._client.chat_startStream(
                        channel=self._channel,
                        thread_ts=self._thread or "",
                        markdown_text=piece,
                        recipient_user_id=self._incoming.user_id,
                        recipient_team_id=self._job.team_id or None,
                    )
                    self._stream_ts = str(response["ts"])
                    self._streams.append(self._stream_ts)
                    self._stream_size = len(piece)
                    await self._note_answer(self._stream_ts)
                else:
                    room = STREAM_LIMIT - self._stream_size
                    if room <= 0:
                        await self._stop_stream(check=True)
                        continue
                    piece, text = _cut(text, room)
                    await self._client.chat_appendStream(
                        channel=self._channel, ts=self._stream_ts, markdown_text=piece
                    )
                    self._stream_size += len(piece)
                self._streamed += piece
            return True
        except CALL_ERRORS as exc:
            code = reason(exc)
            log.info("slack.stream_failed", error=code)
            if code in UNAVAILABLE_ERRORS:
                self._adapter.native_streaming = False
            self._native = False
            if self._stream_ts is not None:
                await self._stop_stream()
            self._offset = len(self._streamed)
            return False

    async def _end_stream(self, note: str) -> bool:
        """Stop the stream with ``note`` (if any) at its end; False when the note still has to be shown."""
        ts = self._stream_ts
        try:
            blocks = None
            if self._final_answer:
                await self._answer_shown()
                blocks = [feedback_block(self._language)]
            await self._stop_stream(f"\n\n_{note}_" if note else None, check=True, blocks=blocks)
            return True
        except CALL_ERRORS as exc:
            log.info("slack.stream_stop_failed", error=reason(exc))
        # Once more without the notice, so the message does not stay "loading"; the text is shown either way.
        self._stream_ts = ts
        await self._stop_stream()
        return not note

    async def _stop_stream(
        self,
        markdown_text: str | None = None,
        *,
        check: bool = False,
        blocks: list[dict[str, object]] | None = None,
    ) -> None:
        ts, self._stream_ts, self._stream_size = self._stream_ts, None, 0
        if ts is None:
            return
        try:
            await self._client.chat_stopStream(
                channel=self._channel, ts=ts, markdown_text=markdown_text, blocks=blocks
            )
        except CALL_ERRORS as exc:
            if check:
                raise
            log.info("slack.stream_stop_failed", error=reason(exc))

    # -- messages and edits

    async def _sync(self, chunks: list[str], *, optional: bool = False) -> None:
        """Make the posted messages show ``chunks``: edit what changed, post what is new, drop the rest.

        ``optional`` (progress): an edit that fails (e.g. rate limited) is skipped, not retried or replaced.
        """
        for i, chunk in enumerate(chunks):
            if i < len(self._messages):
                if self._shown[i] == chunk:
                    continue
                if await self._update(self._messages[i], chunk, optional=optional):
                    self._shown[i] = chunk
                    continue
                if optional:
                    continue
                posted = await self._post(chunk)
                if posted:
                    self._messages[i], self._shown[i] = posted[0], chunk
                continue
            for ts in await self._post(chunk):
                self._messages.append(ts)
                self._shown.append(chunk)
        for ts in self._messages[len(chunks) :]:
            with contextlib.suppress(SlackApiError):
                await self._client.chat_delete(channel=self._channel, ts=ts)
        del self._messages[len(chunks) :]
        del self._shown[len(chunks) :]
        if self._messages:
            await self._note_answer(self._messages[0])

    async def _note_answer(self, ts: str) -> None:
        """Once per answer: keep the first message's ts in the inbox until the answer is done."""
        if not self._noted and self._incoming.command is None:
            self._noted = True
            await self._adapter.engine.note_answer_message(self._incoming, ts)

    def _thought_blocks(self, chunk: str) -> list[dict[str, Any]] | None:
        return self._thoughts.blocks(chunk) if self._thoughts is not None else None

    async def _post(self, text: str) -> list[str]:
        try:
            response = await self._client.chat_postMessage(
                channel=self._channel,
                text=text,
                blocks=self._thought_blocks(text),
                thread_ts=self._thread,
                unfurl_links=False,
                unfurl_media=False,
            )
            return [str(response["ts"])]
        except SlackApiError as exc:
            code = error_code(exc)
            if code == "msg_too_long" and len(text) > 200:
                posted: list[str] = []
                for piece in split(text, len(text) // 2 + 1):
                    posted += await self._post(piece)
                return posted
            log.warning("slack.post_failed", error=code, event_id=self._incoming.event_id)
            self._lost = True
            return []

    async def _update(self, ts: str, text: str, *, optional: bool = False) -> bool:
        client, errors = (self._optional, CALL_ERRORS) if optional else (self._client, (SlackApiError,))
        try:
            await client.chat_update(
                channel=self._channel, ts=ts, text=text, blocks=self._thought_blocks(text)
            )
            return True
        except errors as exc:
            log.info("slack.update_failed", error=reason(exc), optional=optional)
            return False

    async def _ephemeral(self, text: str, *, mrkdwn: bool = False) -> None:
        body = text if mrkdwn else escape(text)
        if not await post_privately(self._adapter, self._job, self._incoming.user_id, body):
            self._lost = True


async def post_privately(adapter: Connection, job: Job, user_id: str, body: str) -> bool:
    """``body`` shown only to ``user_id``: through the command's response URL where there is one, else
    chat.postEphemeral; False when neither took it."""
    if job.response_url:
        try:
            async with adapter.session.post(
                job.response_url, json={"response_type": "ephemeral", "text": body}
            ) as response:
                if response.status == 200:
                    return True
                log.warning("slack.response_url_failed", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack.response_url_failed", error=exc.__class__.__name__)
    try:
        await adapter.client.chat_postEphemeral(
            channel=job.channel, user=user_id, text=body, thread_ts=job.thread_ts
        )
    except SlackApiError as exc:
        log.warning("slack.ephemeral_failed", error=error_code(exc))
        return False
    return True


def _answer_chunks(
    chunks: list[str], notice: Notice | None, sourcing: Sourcing | None, thoughts_first: bool = True
) -> list[str]:
    """The answer's messages: the thought summary above it (below, when ``thoughts_first`` is False: the
    start of the answer is already shown), the sources under it, then the notice."""
    thoughts = thoughts_mrkdwn(sourcing)
    if thoughts and thoughts_first:
        chunks = _joined(split(thoughts), chunks)
    elif thoughts:
        chunks = _joined(chunks, split(thoughts))
    chunks = _joined(chunks, split(sources_mrkdwn(sourcing)))
    if notice is not None and notice.text:
        chunks = _joined(chunks, [f"_{escape(notice.text)}_"])
    return chunks


def _joined(first: list[str], then: list[str]) -> list[str]:
    """``first`` and ``then`` as messages, the pieces where they meet joined when they fit in one."""
    first, then = [c for c in first if c], [c for c in then if c]
    if first and then and len(first[-1]) + len(then[0]) + 2 <= MESSAGE_LIMIT:
        return [*first[:-1], f"{first[-1]}\n\n{then[0]}", *then[1:]]
    return first + then


def _cut(text: str, size: int) -> tuple[str, str]:
    """``text`` cut at most ``size`` characters in, preferably after a newline."""
    if len(text) <= size:
        return text, ""
    if size <= 0:
        return "", text
    at = text.rfind("\n", size // 2, size)
    at = at + 1 if at > 0 else size
    return text[:at], text[at:]
