"""An emulator of the Telegram Bot API (aiohttp, 127.0.0.1), faithful to the Bot API's documented wire format.

It speaks what python-telegram-bot speaks: ``POST /bot<token>/<method>`` with form-encoded fields whose
non-string values are JSON strings, ``{"ok": true, "result": ...}`` on success and the real error statuses and
bodies otherwise (429 with ``parameters.retry_after``, 400 "can't parse entities" for HTML Telegram rejects,
403 for a blocked bot, 409 for getUpdates while a webhook is set). Typical use::

    async with TelegramEmulator() as tg:
        ann = tg.user(111, "Ann")
        tg.send(tg.private_chat(ann), ann, "hello")        # queued for getUpdates, or POSTed to the webhook
        await tg.wait_for(lambda: tg.bot_messages(111))
        tg.fail("sendMessage", Fault.flood(2))             # the next sendMessage gets a 429
        tg.stall("sendMessage", 2.0)                        # done at once, answered 2 s later
        release = tg.hold("sendMessage", chat_id=111)       # waits, not done, until release.set()

Every call is recorded (method, decoded fields, monotonic time, status) in :attr:`TelegramEmulator.calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.loopback import LoopbackServer

__all__ = ["BOT_TOKEN", "Fault", "RecordedCall", "TelegramEmulator", "html_to_entities"]

BOT_TOKEN = "7012345678:AAHtestTokenForTheTelegramEmulator0123"
# The ``from`` Telegram puts on messages posted as a chat: by a group's anonymous admin, or as a channel.
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files: bots are served at most 20 MB
# Where the Bot API keeps each kind of file (getFile's ``file_path`` starts with it).
_FOLDERS = {
    "photo": "photos",
    "voice": "voice",
    "audio": "music",
    "video": "videos",
    "video_note": "video_notes",
    "document": "documents",
    "sticker": "stickers",
    "animation": "animations",
}
# Fields PTB sends as raw strings; every other field is a JSON string.
_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "action",
        "file_id",
        "description",
        "inline_query_id",
        "next_offset",
        "short_description",
        "name",
        "language_code",
        "ip_address",
        "emoji",
    }
)
_ALLOWED_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class HtmlError(ValueError):
    """Telegram's HTML parser refused a text (the message after "can't parse entities: ")."""


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def html_to_entities(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML like the Bot API: (plain text, entities with UTF-16 offsets), or HtmlError."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, dict[str, Any]]] = []
    i = 0

    def offset_of(pos: int) -> int:
        return len(source[:pos].encode("utf-8"))

    while i < len(source):
        ch = source[i]
        if ch == "<":
            end = source.find(">", i)
            if end < 0:
                raise HtmlError(f"Unclosed start tag at byte offset {offset_of(i)}")
            body = source[i + 1 : end].strip()
            if body.startswith("/"):
                name = body[1:].strip().lower()
                if not stack:
                    raise HtmlError(f"Unexpected end tag at byte offset {offset_of(i)}")
                open_name, start, closed = stack.pop()
                if open_name != name:
                    raise HtmlError(
                        f'Unmatched end tag at byte offset {offset_of(i)}, expected "</{open_name}>", '
                        f'found "</{name}>"'
                    )
                length = _u16("".join(out)) - start
                if length > 0 and closed:
                    closed["offset"] = start
                    closed["length"] = length
                    entities.append(closed)
            else:
                match = re.match(r"([a-zA-Z-]+)\s*(.*)", body, re.DOTALL)
                name = match.group(1).lower() if match else ""
                attrs = dict(re.findall(r'([a-z-]+)\s*=\s*"([^"]*)"', match.group(2))) if match else {}
                if name not in _ALLOWED_TAGS:
                    raise HtmlError(f'Unsupported start tag "{name}" at byte offset {offset_of(i)}')
                kind = _ALLOWED_TAGS[name]
                entity: dict[str, Any] = {"type": kind}
                if name == "a":
                    entity["url"] = html.unescape(attrs.get("href", ""))
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    entity = {}
                if name == "code" and stack and stack[-1][0] == "pre":
                    language = attrs.get("class", "")
                    if language.startswith("language-"):
                        stack[-1][2]["language"] = language[len("language-") :]
                    entity = {}
                if name == "blockquote" and "expandable" in body:
                    entity["type"] = "expandable_blockquote"
                stack.append((name, _u16("".join(out)), entity))
            i = end + 1
        elif ch == "&":
            match = re.match(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);", source[i:])
            if match is None:
                raise HtmlError(f"Unsupported HTML entity at byte offset {offset_of(i)}")
            name = match.group(1)
            if name.startswith("#x"):
                out.append(chr(int(name[2:], 16)))
            elif name.startswith("#"):
                out.append(chr(int(name[1:])))
            elif name in _NAMED_ENTITIES:
                out.append(_NAMED_ENTITIES[name])
            else:
                raise HtmlError(f'Unsupported HTML entity "&{name};" at byte offset {offset_of(i)}')
            i += match.end()
        else:
            out.append(ch)
            i += 1
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


@dataclass(frozen=True)
class Fault:
    """An error the next matching call gets instead of its normal answer."""

    status: int
    description: str
    retry_after: int | None = None
    migrate_to_chat_id: int | None = None

    @classmethod
    def flood(cls, seconds: int) -> Fault:
        """429 flood control with ``parameters.retry_after``."""
        return cls(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)

    @classmethod
    def blocked(cls) -> Fault:
        return cls(403, "Forbidden: bot was blocked by the user")

    @classmethod
    def bad_request(cls, description: str) -> Fault:
        return cls(400, f"Bad Request: {description}")

    @classmethod
    def server_error(cls) -> Fault:
        return cls(502, "Bad Gateway")

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        parameters: dict[str, Any] = {}
        if self.retry_after is not None:
            parameters["retry_after"] = self.retry_after
        if self.migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = self.migrate_to_chat_id
        if parameters:
            payload["parameters"] = parameters
        return payload


@dataclass
class RecordedCall:
    """One Bot API call as received: decoded fields, ``at`` = time.monotonic(), and the answer's status."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 200
    description: str = ""

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if isinstance(value, int | str) and str(value).lstrip("-").isdigit() else None


@dataclass
class _FaultRule:
    method: str
    fault: Fault
    times: int
    chat_id: int | None
    after: int = 0


@dataclass
class _StallRule:
    method: str
    seconds: float
    times: int
    chat_id: int | None


@dataclass
class _HoldRule:
    method: str
    chat_id: int | None
    release: asyncio.Event


@dataclass
class BotMessage:
    """A message the bot sent, as it currently stands (after edits)."""

    chat_id: int
    message_id: int
    text: str
    entities: list[dict[str, Any]]
    parse_mode: str | None
    source: str
    thread_id: int | None = None
    reply_to: int | None = None
    edits: int = 0


@dataclass
class _File:
    file_id: str
    unique_id: str
    data: bytes
    path: str
    declared_size: int | None = None  # what Telegram says the file's size is (the bytes held may be fewer)
    link_expired: bool = False  # the file URL answers 404 (links are only guaranteed for an hour)

    @property
    def size(self) -> int:
        return len(self.data) if self.declared_size is None else self.declared_size

    @property
    def fields(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "file_unique_id": self.unique_id, "file_size": self.size}


class TelegramEmulator(LoopbackServer):
    """The Bot API on 127.0.0.1: long polling, webhooks, messages, drafts, files, faults and a call log."""

    def __init__(
        self,
        *,
        token: str = BOT_TOKEN,
        bot_username: str = "gembot_test_bot",
        bot_name: str = "Gembot",
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user = {"id": self.bot_id, "is_bot": True, "first_name": bot_name, "username": bot_username}
        self.host = host
        self.port = port
        self.record = record
        self.base_url = ""
        self.calls: list[RecordedCall] = []
        self.bot_messages_by_chat: dict[int, dict[int, BotMessage]] = {}
        self.drafts: list[dict[str, Any]] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.webhook: dict[str, Any] = {}
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, HTTP status; 0 = no connection)
        self._pending: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._poll_generation = 0
        self._update_ids = itertools.count(500_001)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._faults: list[_FaultRule] = []
        self._stalls: list[_StallRule] = []
        self._holds: list[_HoldRule] = []
        self._blocked: set[int] = set()
        self._muted: set[int] = set()
        self._deleted_topics: set[tuple[int, int]] = set()
        self._garbled: dict[str, int] = {}
        self._migrated: dict[int, int] = {}
        self._closing = False
        self._files: dict[str, _File] = {}
        self._file_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._delivery: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()
        self.supports_inline_queries = False
        self.inline_answers: dict[str, dict[str, Any]] = {}  # inline query id -> answerInlineQuery's fields
        self._inline_queries: dict[str, dict[str, Any]] = {}
        self._inline_ids = itertools.count(9_000_000_001)
        self._reactions: dict[tuple[int, int, int], list[dict[str, Any]]] = {}

    # -------------------------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Listen on ``host:port`` (0 = any free port); returns the base URL (``telegram.base_url``)."""
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        await self._serve(app, handler_cancellation=True)
        self._session = aiohttp.ClientSession()
        self._delivery = asyncio.create_task(self._deliver_webhooks(), name="tg-emulator-webhook")
        return self.base_url

    async def stop(self) -> None:
        """Stop listening (pending long polls return at once)."""
        self._closing = True
        self._notify()
        if self._delivery is not None:
            self._delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery
        if self._session is not None:
            await self._session.close()
        await self._close()

    # ------------------------------------------------------------------------------ chats, users

    @staticmethod
    def user(
        user_id: int, first_name: str, username: str | None = None, language_code: str | None = "en"
    ) -> dict[str, Any]:
        """A user object (``from``)."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        return user

    def private_chat(self, user: dict[str, Any]) -> dict[str, Any]:
        """The private chat with ``user``."""
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if "username" in user:
            chat["username"] = user["username"]
        self._chats[chat["id"]] = chat
        return chat

    def group(
        self, chat_id: int, title: str = "Group", *, supergroup: bool = False, forum: bool = False
    ) -> dict[str, Any]:
        """A group (``supergroup=True`` or ``forum=True`` for a supergroup; ids are negative)."""
        chat: dict[str, Any] = {
            "id": chat_id,
            "type": "supergroup" if supergroup or forum else "group",
            "title": title,
        }
        if forum:
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        return chat

    def block(self, chat_id: int, blocked: bool = True) -> None:
        """Answer every send to ``chat_id`` with 403 "bot was blocked by the user" (until unblocked)."""
        if blocked:
            self._blocked.add(chat_id)
        else:
            self._blocked.discard(chat_id)

    def mute(self, chat_id: int, muted: bool = True) -> None:
        """Take away the bot's right to send messages in a group (until unmuted): sendMessage answers
        400 "not enough rights to send text messages to the chat", as Telegram does."""
        if muted:
            self._muted.add(chat_id)
        else:
            self._muted.discard(chat_id)

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """Delete a forum topic: sends into it answer 400 "message thread not found"."""
        self._deleted_topics.add((chat_id, thread_id))

    def garble(self, method: str, *, times: int = 1) -> None:
        """Answer ``times`` calls of ``method`` with ``{"ok": true, "result": {}}`` after carrying
        them out: a result of the wrong shape (as from a broken proxy), so the client fails on it."""
        self._garbled[method.lower()] = times

    # ------------------------------------------------------------------------------- injection

    def add_file(
        self, data: bytes, *, suffix: str = "jpg", folder: str = "photos", declared_size: int | None = None
    ) -> _File:
        """Store a file the bot can fetch with getFile and the file URL (``declared_size``: the size
        Telegram states for it, when a test holds fewer bytes than it claims)."""
        n = next(self._file_ids)
        entry = _File(
            f"AgAC-file-{n:06d}", f"AQAD{n:06d}", data, f"{folder}/file_{n}.{suffix}", declared_size
        )
        self._files[entry.file_id] = entry
        return entry

    def media_message(
        self,
        chat: dict[str, Any],
        user: dict[str, Any],
        kind: str,
        data: bytes,
        *,
        caption: str | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        declared_size: int | None = None,
        media_group_id: str | None = None,
        animated: bool = False,
        reply_to: dict[str, Any] | int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """A user's message carrying one file of ``kind`` ("voice", "audio", "video", "video_note",
        "document", "photo", "sticker", "animation"), with the fields the Bot API gives it; not queued
        (:meth:`send_media` queues it)."""
        suffix = (file_name or "").rpartition(".")[2] or {"voice": "oga", "sticker": "webp"}.get(kind, "bin")
        entry = self.add_file(data, suffix=suffix, folder=_FOLDERS[kind], declared_size=declared_size)
        message = self.user_message(chat, user, None, reply_to, thread_id, None, None, None, None)
        message.update(_media_fields(kind, entry, file_name, mime_type, animated=animated))
        _caption(message, caption)
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        return message

    def send_media(
        self, chat: dict[str, Any], user: dict[str, Any], kind: str, data: bytes, **fields: Any
    ) -> dict[str, Any]:
        """Queue a message carrying one file (see :meth:`media_message`); returns the message."""
        message = self.media_message(chat, user, kind, data, **fields)
        self.inject({"message": message})
        return message

    def send_album(
        self,
        chat: dict[str, Any],
        user: dict[str, Any],
        parts: Iterable[tuple[str, bytes]],
        *,
        caption: str | None = None,
    ) -> list[dict[str, Any]]:
        """Queue an album: one update per (kind, bytes) part, all with the same ``media_group_id``, the
        caption on the first part (as Telegram's apps send it). Returns the messages."""
        group = f"{next(self._file_ids) + 13_000_000_000_000_000}"
        messages = [
            self.media_message(
                chat, user, kind, data, caption=caption if n == 0 else None, media_group_id=group
            )
            for n, (kind, data) in enumerate(parts)
        ]
        for message in messages:
            self.inject({"message": message})
        return messages

    def send(
        self,
        chat: dict[str, Any],
        user: dict[str, Any],
        text: str | None = None,
        *,
        reply_to: dict[str, Any] | int | None = None,
        thread_id: int | None = None,
        photo: Iterable[bytes] | None = None,
        caption: str | None = None,
        kind: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Inject a user message (entities generated as Telegram would) and queue its update.

        ``photo``: the sizes' bytes, smallest first. ``kind``: "sticker", "voice", "document", "video",
        "location"... for unsupported content. Returns the message object.
        """
        message = self.user_message(chat, user, text, reply_to, thread_id, photo, caption, kind, extra)
        self.inject({"message": message})
        return message

    def message_update(self, chat: dict[str, Any], user: dict[str, Any], text: str) -> dict[str, Any]:
        """A new text message's update (``update_id`` assigned), not queued: for a test that delivers it
        itself with :meth:`post_update`."""
        message = self.user_message(chat, user, text, None, None, None, None, None, None)
        return {"update_id": next(self._update_ids), "message": message}

    async def post_update(self, update: dict[str, Any], url: str | None = None) -> int:
        """POST ``update`` to the webhook (or to ``url``) as Telegram does; the HTTP status (0 = no
        connection). Recorded in ``webhook_deliveries``."""
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(self.webhook["secret_token"])
        try:
            target = url or str(self.webhook["url"])
            async with self._session.post(target, data=json.dumps(update), headers=headers) as response:
                status = response.status
        except aiohttp.ClientError:
            status = 0
        self.webhook_deliveries.append((int(update["update_id"]), status))
        self._changed.set()
        return status

    def send_as_chat(
        self,
        chat: dict[str, Any],
        text: str,
        *,
        sender_chat: dict[str, Any] | None = None,
        signature: str = "",
    ) -> dict[str, Any]:
        """Inject a message posted as a chat: as ``chat`` itself (a group's anonymous admin, signed with
        ``signature`` if given) or as the channel ``sender_chat`` (a linked channel, or a user posting as
        their channel)."""
        sender = chat if sender_chat is None else sender_chat
        extra: dict[str, Any] = {"sender_chat": sender}
        if signature:
            extra["author_signature"] = signature
        bot = GROUP_ANONYMOUS_BOT if sender["id"] == chat["id"] else CHANNEL_BOT
        return self.send(chat, bot, text, extra=extra)

    def edit(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        """Inject an ``edited_message`` update for a user message."""
        edited = dict(message, text=text, edit_date=int(time.time()))
        edited.pop("entities", None)
        entities = _entities_for(text)
        if entities:
            edited["entities"] = entities
        self.inject({"edited_message": edited})
        return edited

    def migrate(self, old_chat: dict[str, Any], new_chat_id: int, user: dict[str, Any]) -> dict[str, Any]:
        """A group becoming a supergroup: the service messages in both chats, as Telegram sends them."""
        new_chat = self.group(new_chat_id, old_chat.get("title", "Group"), supergroup=True)
        self._migrated[old_chat["id"]] = new_chat_id
        self.inject({"message": self.service_message(old_chat, user, migrate_to_chat_id=new_chat_id)})
        self.inject({"message": self.service_message(new_chat, user, migrate_from_chat_id=old_chat["id"])})
        return new_chat

    def inject(self, update: dict[str, Any]) -> int:
        """Queue a raw update (``update_id`` is assigned); returns the update id."""
        update = {"update_id": next(self._update_ids), **update}
        self._pending.append(update)
        self._notify()
        return int(update["update_id"])

    # ------------------------------------------------------------- reactions and inline mode

    def react(
        self, chat: dict[str, Any], user: dict[str, Any], message_id: int, emoji: Iterable[str]
    ) -> dict[str, Any]:
        """``user`` sets their reactions on a message to ``emoji`` (none: removes them): a
        ``message_reaction`` update with the old and new reactions, as Telegram sends it."""
        key = (chat["id"], message_id, user["id"])
        new = [{"type": "emoji", "emoji": e} for e in emoji]
        old = self._reactions.get(key, [])
        self._reactions[key] = new
        reaction = {
            "chat": chat,
            "message_id": message_id,
            "user": user,
            "date": int(time.time()),
            "old_reaction": old,
            "new_reaction": new,
        }
        self.inject({"message_reaction": reaction})
        return reaction

    def inline_query(self, user: dict[str, Any], query: str, *, chat_type: str = "sender") -> str:
        """``user`` typed ``@bot query`` in a chat: an ``inline_query`` update; returns the query id."""
        query_id = str(next(self._inline_ids))
        inline = {"id": query_id, "from": user, "query": query, "offset": "", "chat_type": chat_type}
        self._inline_queries[query_id] = inline
        self.inject({"inline_query": inline})
        return query_id

    def choose_inline_result(self, user: dict[str, Any], query_id: str, result_id: str) -> None:
        """``user`` sent the result ``result_id`` of an answered query: a ``chosen_inline_result``."""
        query = self._inline_queries[query_id]["query"]
        self.inject({"chosen_inline_result": {"result_id": result_id, "from": user, "query": query}})

    async def _m_answerinlinequery(self, params: dict[str, Any]) -> Any:
        query_id = str(params.get("inline_query_id") or "")
        if query_id not in self._inline_queries or query_id in self.inline_answers:
            raise _ApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        results = params.get("results")
        if not isinstance(results, list) or len(results) > 50:
            raise _ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        for result in results:
            if not isinstance(result, dict) or not result.get("id") or not result.get("type"):
                raise _ApiError(400, "Bad Request: result is invalid")
            content = result.get("input_message_content")
            if result["type"] == "article":
                if not result.get("title") or not isinstance(content, dict):
                    raise _ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
                self._parse_text(
                    {"text": content.get("message_text"), "parse_mode": content.get("parse_mode")}
                )
        self.inline_answers[query_id] = params
        return True

    def _notify(self) -> None:
        # Wake every current waiter; later waiters wait on a fresh event.
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    async def _wait_update(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), max(0.0, seconds))

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _base(self, chat: dict[str, Any], sender: dict[str, Any], thread_id: int | None) -> dict[str, Any]:
        self._chats.setdefault(chat["id"], chat)
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "from": sender,
            "chat": chat,
            "date": int(time.time()),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        return message

    def service_message(self, chat: dict[str, Any], user: dict[str, Any], **fields: Any) -> dict[str, Any]:
        message = self._base(chat, user, None)
        message.update(fields)
        self._messages[(chat["id"], message["message_id"])] = message
        return message

    def user_message(
        self,
        chat: dict[str, Any],
        user: dict[str, Any],
        text: str | None,
        reply_to: dict[str, Any] | int | None,
        thread_id: int | None,
        photo: Iterable[bytes] | None,
        caption: str | None,
        kind: str | None,
        extra: dict[str, Any] | None,
    ) -> dict[str, Any]:
        message = self._base(chat, user, thread_id)
        if reply_to is not None:
            replied = reply_to if isinstance(reply_to, dict) else self._messages[(chat["id"], reply_to)]
            message["reply_to_message"] = replied
        if photo is not None:
            sizes = []
            for n, data in enumerate(photo):
                entry = self.add_file(data)
                side = 90 * (n + 1) ** 2
                sizes.append(
                    {
                        "file_id": entry.file_id,
                        "file_unique_id": entry.unique_id,
                        "width": side,
                        "height": side,
                        "file_size": len(data),
                    }
                )
            message["photo"] = sizes
            _caption(message, caption)
        elif kind is not None:
            message.update(_unsupported(kind, self.add_file(b"\x00" * 64, suffix="bin")))
            if caption is not None:
                message["caption"] = caption
        if text is not None:
            message["text"] = text
            entities = _entities_for(text)
            if entities:
                message["entities"] = entities
        message.update(extra or {})
        self._messages[(chat["id"], message["message_id"])] = message
        return message

    # -------------------------------------------------------------------------------- faults

    def fail(
        self, method: str, fault: Fault, *, times: int = 1, chat_id: int | None = None, after: int = 0
    ) -> None:
        """Answer ``times`` calls of ``method`` (for ``chat_id`` if given) with ``fault``, once ``after``
        matching calls have been answered normally."""
        self._faults.append(_FaultRule(method.lower(), fault, times, chat_id, after))

    def stall(self, method: str, seconds: float, *, times: int = 1, chat_id: int | None = None) -> None:
        """Carry out the next ``times`` calls of ``method`` at once but answer them ``seconds`` later, so
        a client that gives up sooner sees a timeout for a call that took effect."""
        self._stalls.append(_StallRule(method.lower(), seconds, times, chat_id))

    def hold(self, method: str, *, chat_id: int | None = None) -> asyncio.Event:
        """Keep every call of ``method`` (for ``chat_id`` if given) waiting, not carried out, until the
        returned event is set."""
        rule = _HoldRule(method.lower(), chat_id, asyncio.Event())
        self._holds.append(rule)
        return rule.release

    def _take_fault(self, method: str, chat_id: int | None) -> Fault | None:
        for rule in self._faults:
            if rule.method == method and (rule.chat_id is None or rule.chat_id == chat_id) and rule.times > 0:
                if rule.after > 0:
                    rule.after -= 1
                    continue
                rule.times -= 1
                return rule.fault
        return None

    def _take_stall(self, method: str, chat_id: int | None) -> float:
        for rule in self._stalls:
            if rule.method == method and (rule.chat_id is None or rule.chat_id == chat_id) and rule.times > 0:
                rule.times -= 1
                return rule.seconds
        return 0.0

    # -------------------------------------------------------------------------------- queries

    def calls_to(
        self, method: str, *, chat_id: int | None = None, ok: bool | None = None
    ) -> list[RecordedCall]:
        """Recorded calls of ``method`` (case-insensitive), optionally for one chat and by success."""
        wanted = method.lower()
        return [
            c
            for c in self.calls
            if c.method.lower() == wanted
            and (chat_id is None or c.chat_id == chat_id)
            and (ok is None or (c.status == 200) == ok)
        ]

    def bot_messages(self, chat_id: int, thread_id: int | None = None) -> list[BotMessage]:
        """The bot's messages in a chat (or one forum topic), oldest first, as they stand now."""
        messages = sorted(self.bot_messages_by_chat.get(chat_id, {}).values(), key=lambda m: m.message_id)
        if thread_id is None:
            return messages
        return [m for m in messages if m.thread_id == thread_id]

    def texts(self, chat_id: int, thread_id: int | None = None) -> list[str]:
        """The plain texts of the bot's messages in a chat."""
        return [m.text for m in self.bot_messages(chat_id, thread_id)]

    async def wait_for(self, predicate: Callable[[], object], within: float = 10.0) -> None:
        """Wait until ``predicate()`` is true (checked after every call), or fail after ``within`` s."""
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {within} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    # ------------------------------------------------------------------------------- the API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        method = request.match_info["method"]
        params = await _decode(request)
        call = RecordedCall(method, params, time.monotonic())
        if self.record:
            self.calls.append(call)
        try:
            response = await self._dispatch(method.lower(), params, call)
        finally:
            self._changed.set()
        return response

    async def _dispatch(self, method: str, params: dict[str, Any], call: RecordedCall) -> web.Response:
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return self._fail(call, 404, "Not Found")
        for hold in self._holds:
            if hold.method == method and hold.chat_id in (None, call.chat_id):
                await hold.release.wait()
        fault = self._take_fault(method, call.chat_id)
        if fault is not None:
            call.status, call.description = fault.status, fault.description
            return _json(fault.status, fault.body())
        if call.chat_id is not None and call.chat_id in self._blocked and method != "getchat":
            return self._fail(call, 403, "Forbidden: bot was blocked by the user")
        try:
            result = await handler(params)
        except _MigratedError as exc:
            return self._fail(
                call,
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": exc.new_id},
            )
        except _ApiError as exc:
            return self._fail(call, exc.status, exc.description, exc.parameters)
        if self._garbled.get(method, 0) > 0:
            self._garbled[method] -= 1
            return _json(200, {"ok": True, "result": {}})
        stall = self._take_stall(method, call.chat_id)
        if stall:
            self._changed.set()  # the call took effect: waiters may look now
            await asyncio.sleep(stall)
        return _json(200, {"ok": True, "result": result})

    def _fail(
        self, call: RecordedCall, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> web.Response:
        call.status, call.description = status, description
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return _json(status, body)

    async def _m_getme(self, _params: dict[str, Any]) -> Any:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": self.supports_inline_queries,
        }

    async def _m_getupdates(self, params: dict[str, Any]) -> Any:
        if self.webhook.get("url"):
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(int(params.get("limit") or 100), 100)
        timeout = float(params.get("timeout") or 0)
        allowed = params.get("allowed_updates")
        if offset:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        self._poll_generation += 1
        generation = self._poll_generation
        deadline = time.monotonic() + timeout
        while True:
            ready = [u for u in self._pending if _allowed(u, allowed)][:limit]
            if ready or time.monotonic() >= deadline or self._closing:
                return ready
            await self._wait_update(deadline - time.monotonic())
            if generation != self._poll_generation:
                raise _ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )

    async def _m_setwebhook(self, params: dict[str, Any]) -> Any:
        url = params.get("url") or ""
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": params.get("allowed_updates"),
            "max_connections": params.get("max_connections"),
        }
        self._notify()
        return True

    async def _m_deletewebhook(self, params: dict[str, Any]) -> Any:
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self.webhook = {}
        return True

    async def _m_getwebhookinfo(self, _params: dict[str, Any]) -> Any:
        return {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    async def _m_setmycommands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or not commands:
            raise _ApiError(400, "Bad Request: commands must be non-empty")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands[str(params.get("language_code") or "")] = commands
        return True

    async def _m_getmycommands(self, params: dict[str, Any]) -> Any:
        return self.commands.get(str(params.get("language_code") or ""), [])

    async def _m_deletemycommands(self, params: dict[str, Any]) -> Any:
        self.commands.pop(str(params.get("language_code") or ""), None)
        return True

    async def _m_sendchataction(self, params: dict[str, Any]) -> Any:
        self._check_topic(self._chat(params), params)
        if params.get("action") not in {
            "typing",
            "upload_photo",
            "record_video",
            "upload_video",
            "record_voice",
            "upload_voice",
            "upload_document",
            "choose_sticker",
            "find_location",
            "record_video_note",
            "upload_video_note",
        }:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        try:
            chat = self._chats[int(chat_id)]  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            raise _ApiError(400, "Bad Request: chat not found") from None
        if chat["id"] in self._migrated:
            raise _MigratedError(self._migrated[chat["id"]])
        return chat

    def _parse_text(
        self, params: dict[str, Any], *, allow_empty: bool = False
    ) -> tuple[str, list[dict[str, Any]]]:
        text = params.get("text")
        text = "" if text is None else str(text)
        mode = params.get("parse_mode")
        if mode is not None and str(mode).lower() == "html":
            try:
                plain, entities = html_to_entities(text)
            except HtmlError as exc:
                raise _ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        elif mode is not None and str(mode).lower() not in ("", "none"):
            raise _ApiError(400, f"Bad Request: unsupported parse_mode {mode}")
        else:
            plain, entities = text, list(params.get("entities") or [])
        if not plain.strip() and not allow_empty:
            raise _ApiError(400, "Bad Request: message text is empty")
        if _u16(plain) > TEXT_LIMIT:
            raise _ApiError(400, "Bad Request: message is too long")
        return plain, entities

    def _check_topic(self, chat: dict[str, Any], params: dict[str, Any]) -> None:
        thread_id = params.get("message_thread_id")
        if thread_id is not None and (chat["id"], int(thread_id)) in self._deleted_topics:
            raise _ApiError(400, "Bad Request: message thread not found")

    async def _m_sendmessage(self, params: dict[str, Any]) -> Any:
        chat = self._chat(params)
        self._check_topic(chat, params)
        if chat["id"] in self._muted:
            raise _ApiError(400, "Bad Request: not enough rights to send text messages to the chat")
        plain, entities = self._parse_text(params)
        thread_id = params.get("message_thread_id")
        reply = params.get("reply_parameters") or {}
        reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        if (
            reply_to is not None
            and (chat["id"], reply_to) not in self._messages
            and not reply.get("allow_sending_without_reply")
        ):
            raise _ApiError(400, "Bad Request: message to be replied not found")
        message = self._base(chat, self.bot_user, int(thread_id) if thread_id is not None else None)
        message["text"] = plain
        if entities:
            message["entities"] = entities
        if reply_to is not None and (chat["id"], reply_to) in self._messages:
            message["reply_to_message"] = self._messages[(chat["id"], reply_to)]
        self._messages[(chat["id"], message["message_id"])] = message
        self.bot_messages_by_chat.setdefault(chat["id"], {})[message["message_id"]] = BotMessage(
            chat["id"],
            message["message_id"],
            plain,
            entities,
            params.get("parse_mode"),
            str(params.get("text")),
            thread_id=int(thread_id) if thread_id is not None else None,
            reply_to=reply_to,
        )
        return message

    async def _m_editmessagetext(self, params: dict[str, Any]) -> Any:
        chat = self._chat(params)
        message_id = int(params.get("message_id") or 0)
        stored = self.bot_messages_by_chat.get(chat["id"], {}).get(message_id)
        if stored is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        plain, entities = self._parse_text(params)
        if plain == stored.text and entities == stored.entities:
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup of the message",
            )
        stored.text, stored.entities, stored.source = plain, entities, str(params.get("text"))
        stored.parse_mode = params.get("parse_mode")
        stored.edits += 1
        message = dict(self._messages[(chat["id"], message_id)], text=plain, edit_date=int(time.time()))
        message["entities"] = entities
        self._messages[(chat["id"], message_id)] = message
        return message

    async def _m_sendmessagedraft(self, params: dict[str, Any]) -> Any:
        chat = self._chat(params)
        if chat["type"] != "private":
            raise _ApiError(400, "Bad Request: TEXTDRAFT_PEER_INVALID")
        if not int(params.get("draft_id") or 0):
            raise _ApiError(400, "Bad Request: draft_id must be non-zero")
        plain, _ = self._parse_text(params, allow_empty=True)
        self.drafts.append(
            {
                "chat_id": chat["id"],
                "draft_id": int(params["draft_id"]),
                "text": plain,
                "at": time.monotonic(),
            }
        )
        return True

    async def _m_deletemessage(self, params: dict[str, Any]) -> Any:
        chat = self._chat(params)
        message_id = int(params.get("message_id") or 0)
        if self.bot_messages_by_chat.get(chat["id"], {}).pop(message_id, None) is None:
            raise _ApiError(400, "Bad Request: message to delete not found")
        return True

    async def _m_getfile(self, params: dict[str, Any]) -> Any:
        entry = self._files.get(str(params.get("file_id")))
        if entry is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if entry.size > DOWNLOAD_LIMIT:
            raise _ApiError(400, "Bad Request: file is too big")
        return {**entry.fields, "file_path": entry.path}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        path = request.match_info["path"]
        self.calls.append(RecordedCall("file", {"path": path}, time.monotonic()))
        for entry in self._files.values():
            if entry.path == path and not entry.link_expired:
                return web.Response(body=entry.data, content_type="application/octet-stream")
        return _json(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    # ------------------------------------------------------------------------------- webhooks

    async def _deliver_webhooks(self) -> None:
        """POST queued updates to the webhook as Telegram does: up to ``max_connections`` (setWebhook's,
        40 by default) at once, a chat's updates one after another, failures retried after a pause."""
        delivering: set[int] = set()  # update ids in flight (or pausing after a failure)
        tasks: set[asyncio.Task[None]] = set()

        async def deliver(update: dict[str, Any]) -> None:
            try:
                status = await self.post_update(update)
                if 200 <= status < 300:
                    with contextlib.suppress(ValueError):
                        self._pending.remove(update)
                else:
                    await asyncio.sleep(0.5)
            finally:
                delivering.discard(int(update["update_id"]))
                self._notify()

        try:
            while not self._closing:  # a cancel racing the wake-up can be lost in wait_for (3.11)
                url = self.webhook.get("url")
                limit = int(self.webhook.get("max_connections") or 40)
                if url and self._pending and len(delivering) < limit:
                    waiting_chats: set[Any] = set()
                    for update in list(self._pending):
                        if not _allowed(update, self.webhook.get("allowed_updates")):
                            self._pending.remove(update)  # the bot did not ask for updates of this kind
                            continue
                        chat = _chat_of(update)
                        if chat is not None and chat in waiting_chats:
                            continue  # an earlier update of this chat goes first
                        waiting_chats.add(chat)
                        if int(update["update_id"]) in delivering:
                            continue
                        if len(delivering) >= limit:
                            break
                        delivering.add(int(update["update_id"]))
                        task = asyncio.create_task(deliver(update), name="tg-emulator-delivery")
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                await self._wait_update(0.5)
        finally:
            for task in list(tasks):
                task.cancel()


def _chat_of(update: dict[str, Any]) -> Any:
    """The chat an update belongs to (None when it has none: such updates are not ordered)."""
    for value in update.values():
        if isinstance(value, dict):
            chat = value.get("chat") or (value.get("message") or {}).get("chat")
            if isinstance(chat, dict):
                return chat.get("id")
    return None


class _ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


class _MigratedError(Exception):
    def __init__(self, new_id: int) -> None:
        super().__init__(new_id)
        self.new_id = new_id


async def _decode(request: web.Request) -> dict[str, Any]:
    """Query, form or JSON fields; JSON-string values decoded except for the fields sent raw."""
    fields: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                return {**fields, **body}
        else:
            form = await request.post()
            fields.update({k: v for k, v in form.items() if isinstance(v, str)})
    decoded: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _STRING_FIELDS or not isinstance(value, str):
            decoded[key] = value
            continue
        try:
            decoded[key] = json.loads(value)
        except ValueError:
            decoded[key] = value
    return decoded


def _json(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")


# Sent only when asked for by name in allowed_updates.
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def _allowed(update: dict[str, Any], allowed: Any) -> bool:
    if not allowed:
        return not any(key in update for key in _NOT_BY_DEFAULT)
    return any(key in update for key in allowed)


def _entities_for(text: str) -> list[dict[str, Any]]:
    """The entities Telegram generates for a user's text: a leading bot command, @mentions, hashtags, URLs."""
    entities: list[dict[str, Any]] = []
    for match in re.finditer(
        r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,64})?|@[A-Za-z0-9_]{5,32}|https?://\S+", text
    ):
        token = match.group(0)
        if token.startswith("/"):
            kind = "bot_command"
        elif token.startswith("@"):
            kind = "mention"
        else:
            kind = "url"
        entities.append({"type": kind, "offset": _u16(text[: match.start()]), "length": _u16(token)})
    return entities


def _caption(message: dict[str, Any], caption: str | None) -> None:
    """Give ``message`` its caption, with the entities Telegram would find in it."""
    if caption is not None:
        message["caption"] = caption
        entities = _entities_for(caption)
        if entities:
            message["caption_entities"] = entities


def _media_fields(
    kind: str, entry: _File, file_name: str | None, mime_type: str | None, *, animated: bool
) -> dict[str, Any]:
    """The message field of one file of ``kind``, as the Bot API shapes it."""
    named = {k: v for k, v in (("file_name", file_name), ("mime_type", mime_type)) if v is not None}
    shapes: dict[str, dict[str, Any]] = {
        "photo": {"width": 160, "height": 120},
        "voice": {"duration": 2, "mime_type": mime_type or "audio/ogg"},
        "audio": {"duration": 2, **named},
        "video": {"width": 160, "height": 120, "duration": 1, **named},
        "video_note": {"length": 240, "duration": 1},
        "document": named,
        "animation": {"width": 160, "height": 120, "duration": 1, **named},
        "sticker": {
            "type": "regular",
            "width": 128,
            "height": 128,
            "is_animated": animated,
            "is_video": False,
            "emoji": "😀",
            "set_name": "TestStickers",
        },
    }
    fields = {**entry.fields, **shapes[kind]}
    if kind == "photo":
        return {"photo": [fields]}
    if kind == "animation":  # also a document, for clients that predate animations
        return {"animation": fields, "document": {**entry.fields, **named}}
    return {kind: fields}


def _unsupported(kind: str, entry: _File) -> dict[str, Any]:
    file_fields = {"file_id": entry.file_id, "file_unique_id": entry.unique_id, "file_size": len(entry.data)}
    shapes: dict[str, dict[str, Any]] = {
        "sticker": {
            "sticker": {
                **file_fields,
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
                "emoji": "😀",
            }
        },
        "voice": {"voice": {**file_fields, "duration": 3, "mime_type": "audio/ogg"}},
        "audio": {"audio": {**file_fields, "duration": 3}},
        "document": {"document": {**file_fields, "file_name": "report.pdf", "mime_type": "application/pdf"}},
        "video": {"video": {**file_fields, "width": 640, "height": 480, "duration": 3}},
        "video_note": {"video_note": {**file_fields, "length": 240, "duration": 3}},
        "animation": {"animation": {**file_fields, "width": 320, "height": 240, "duration": 2}},
        "location": {"location": {"latitude": 48.85, "longitude": 2.35}},
        "contact": {"contact": {"phone_number": "+100", "first_name": "Bob"}},
        "dice": {"dice": {"emoji": "🎲", "value": 4}},
        "venue": {
            "venue": {
                "location": {"latitude": 48.85, "longitude": 2.35},
                "title": "Café",
                "address": "1 Rue de Rivoli",
            }
        },
        "game": {"game": {"title": "Chess", "description": "A game", "photo": []}},
        "story": {"story": {"chat": {"id": -100123, "type": "channel", "title": "News"}, "id": 3}},
    }
    return shapes[kind]
