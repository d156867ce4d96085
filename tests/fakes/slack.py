"""An emulator of the Slack Web API and Socket Mode (aiohttp, 127.0.0.1), following their documented wire
formats.

Typical use::

    async with SlackEmulator() as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        ...
        async with EventSender(f"http://127.0.0.1:{port}/slack/events") as sender:
            status, _ = await sender.event(mention_event("hi", channel="C1", user="U1"))
        await slack.wait_for(lambda: slack.thread("C1", ts))

Arguments are merged from the query string, a form body and a JSON body. Every call is recorded in
``calls``. Errors are Slack's: HTTP 200 with ``{"ok": false, "error": ...}``, and HTTP 429 with
``Retry-After`` for scripted rate limits. Messages the bot posts, edits, streams and deletes are kept in
``messages``; slash-command ``response_url`` posts land in ``responses``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web

from tests.fakes.loopback import LoopbackServer

BOT_TOKEN = "xoxb-1111-2222-emulatortoken"
APP_TOKEN = "xapp-1-A0TEST-3333-emulatorapptoken"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM_ID = "T0TEST"
APP_ID = "A0TEST"
BOT_USER_ID = "UBOT0001"
BOT_ID = "BBOT0001"
TEXT_LIMIT = 40_000  # chat.postMessage/update text; longer is msg_too_long
STREAM_TEXT_LIMIT = 12_000  # markdown_text per chat.*Stream call

_ts_counter = itertools.count(1)
# Methods that write to a channel (refused in a channel the bot cannot write to).
_WRITES = frozenset(
    {
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
        "assistant.threads.setStatus",
    }
)


# Methods that read a channel (refused, like writes, in a channel the bot is not in).
_READS = frozenset({"conversations.history", "conversations.replies"})
_PAGE_DEFAULT = 100  # conversations.history/replies without a limit
_PAGE_MAX = 999


def new_ts() -> str:
    """A fresh, increasing Slack timestamp."""
    return f"{int(time.time())}.{next(_ts_counter):06d}"


# ------------------------------------------------------------------------------------------ payloads


def event_callback(
    event: dict[str, Any], *, event_id: str | None = None, team_id: str = TEAM_ID
) -> dict[str, Any]:
    """The Events API envelope around ``event``."""
    return {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def mention_event(
    text: str, *, channel: str, user: str, ts: str | None = None, thread_ts: str | None = None
) -> dict[str, Any]:
    """An ``app_mention`` whose text starts with the bot's mention."""
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": TEAM_ID,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message_event(
    text: str,
    *,
    channel: str,
    user: str | None,
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``message`` event (``message.channels``/``.im``...); ``extra`` adds bot_id, subtype, files..."""
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": "message",
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type or ("im" if channel.startswith("D") else "channel"),
        "team": TEAM_ID,
    }
    if user is not None:
        event["user"] = user
    if thread_ts:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def feedback_click(message: Message, *, user: str, value: str, action_id: str) -> dict[str, Any]:
    """The ``block_actions`` payload of a click on a ``feedback_buttons`` element of ``message``."""
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": message.channel,
        "is_ephemeral": False,
    }
    posted: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "ts": message.ts,
        "text": message.text,
        "blocks": message.blocks,
    }
    if message.thread_ts:
        container["thread_ts"] = posted["thread_ts"] = message.thread_ts
    block_id = next((b.get("block_id", "") for b in message.blocks if b.get("type") == "context_actions"), "")
    return {
        "type": "block_actions",
        "user": _interaction_user(user),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": container,
        "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:12]}",
        "team": {"id": TEAM_ID, "domain": "emulated"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {
            "id": message.channel,
            "name": "directmessage" if message.channel.startswith("D") else "general",
        },
        "message": posted,
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{TEAM_ID}/1/{uuid.uuid4().hex}",
        "actions": [
            {
                "type": "feedback_buttons",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def _blocks_of(args: Mapping[str, Any]) -> list[dict[str, Any]] | str:
    """A message's ``blocks`` (sent as a JSON string in forms), or why Slack would refuse them."""
    blocks = args.get("blocks") or []
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return "blocks is not valid JSON"
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "must be a list of at most 50 blocks"
    for block in blocks:
        problem = _block_problem(block)
        if problem:
            return problem
    return blocks


def _block_problem(block: Any) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return "a block without a type"
    if block["type"] == "section":
        body = block.get("text") or {}
        if (
            body.get("type") not in ("mrkdwn", "plain_text")
            or not 1 <= len(str(body.get("text", ""))) <= 3000
        ):
            return "section text must be 1-3000 characters of mrkdwn or plain_text"
    elif block["type"] == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            return "context takes 1-10 elements"
        for element in elements:
            if element.get("type") not in ("mrkdwn", "plain_text", "image"):
                return "context elements are mrkdwn, plain_text or image"
            if element["type"] != "image" and not 1 <= len(str(element.get("text", ""))) <= 3000:
                return "context text must be 1-3000 characters"
    elif block["type"] == "context_actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 5:
            return "context_actions takes 1-5 elements"
        return next((p for p in map(_feedback_buttons_problem, elements) if p), "")
    return ""


def _feedback_buttons_problem(element: Any) -> str:
    if not isinstance(element, dict) or element.get("type") not in ("feedback_buttons", "icon_button"):
        return "context_actions elements are feedback_buttons or icon_button"
    if element["type"] != "feedback_buttons":
        return ""
    if not 1 <= len(str(element.get("action_id") or "")) <= 255:
        return "feedback_buttons needs an action_id"
    for side in ("positive_button", "negative_button"):
        button = element.get(side)
        if not isinstance(button, dict) or not button.get("value"):
            return f"{side} needs a value"
        label = button.get("text") or {}
        if label.get("type") != "plain_text" or not 1 <= len(str(label.get("text", ""))) <= 75:
            return f"{side} text must be 1-75 characters of plain_text"
    return ""


def assistant_thread_event(
    kind: str, *, user: str, channel: str, thread_ts: str, context_channel: str | None = None
) -> dict[str, Any]:
    """``assistant_thread_started`` (``kind`` "started") or ``assistant_thread_context_changed``
    ("context_changed"): the user opened the assistant panel, or looks at another channel beside it."""
    context: dict[str, Any] = {"team_id": TEAM_ID, "enterprise_id": None}
    if context_channel is not None:
        context["channel_id"] = context_channel
    return {
        "type": "assistant_thread_started" if kind == "started" else "assistant_thread_context_changed",
        "assistant_thread": {
            "user_id": user,
            "context": context,
            "channel_id": channel,
            "thread_ts": thread_ts,
        },
        "event_ts": new_ts(),
    }


def app_home_opened_event(*, user: str, channel: str, tab: str = "home") -> dict[str, Any]:
    """``app_home_opened``: ``user`` opened the app's Home (``channel`` is their DM with the app)."""
    return {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab, "event_ts": new_ts()}


def _interaction_user(user: str) -> dict[str, Any]:
    return {
        "id": user,
        "username": f"name-{user.lower()}",
        "name": f"name-{user.lower()}",
        "team_id": TEAM_ID,
    }


def message_shortcut(
    callback_id: str, *, user: str, channel: str, message: dict[str, Any], response_url: str
) -> dict[str, Any]:
    """A ``message_action`` payload: ``user`` ran the message shortcut ``callback_id`` on ``message``."""
    return {
        "type": "message_action",
        "token": "legacy-verification-token",
        "action_ts": new_ts(),
        "team": {"id": TEAM_ID, "domain": "emulated"},
        "user": _interaction_user(user),
        "channel": {"id": channel, "name": "general"},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:12]}",
        "response_url": response_url,
        "message_ts": message["ts"],
        "message": message,
    }


def block_action(
    action_id: str, *, user: str, value: str = "", view_type: str = "home", style: str | None = None
) -> dict[str, Any]:
    """A ``block_actions`` payload: ``user`` clicked the button ``action_id`` in a view (the Home tab)."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": uuid.uuid4().hex[:5],
        "text": {"type": "plain_text", "text": action_id, "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": new_ts(),
    }
    if style:
        action["style"] = style
    view_id = "V" + uuid.uuid4().hex[:10].upper()
    return {
        "type": "block_actions",
        "user": _interaction_user(user),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {"type": "view", "view_id": view_id},
        "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:12]}",
        "team": {"id": TEAM_ID, "domain": "emulated"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {"id": view_id, "type": view_type, "team_id": TEAM_ID, "app_id": APP_ID},
        "actions": [action],
    }


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Slack-Signature`` for ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class EventSender:
    """Sends signed Events API and slash-command requests, as Slack does, to an app's request URL."""

    def __init__(self, url: str, signing_secret: str = SIGNING_SECRET) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EventSender:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[int, str]:
        """POST ``body`` signed with ``secret`` (default: the right one) at ``timestamp`` (default: now)."""
        assert self._session is not None, "use `async with EventSender(...)`"
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature(
                secret if secret is not None else self.signing_secret, stamp, body
            ),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        async with self._session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.text()

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        envelope: dict[str, Any] | None = None,
        **options: Any,
    ) -> tuple[int, str]:
        """Deliver ``event`` (wrapped in an event_callback unless ``envelope`` is given)."""
        payload = envelope if envelope is not None else event_callback(event, event_id=event_id)
        return await self.post(json.dumps(payload).encode(), "application/json", **options)

    async def command(
        self,
        text: str,
        *,
        user: str,
        channel: str,
        response_url: str,
        command: str = "/gembot",
        channel_name: str | None = None,
        **options: Any,
    ) -> tuple[int, str]:
        """Invoke a slash command, form-encoded as Slack sends it."""
        form = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "emulated",
            "channel_id": channel,
            "channel_name": channel_name or ("directmessage" if channel.startswith("D") else "general"),
            "user_id": user,
            "user_name": f"name-{user.lower()}",
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:12]}",
        }
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", **options)

    async def interaction(self, payload: dict[str, Any], **options: Any) -> tuple[int, str]:
        """Deliver a shortcut, a block action or a feedback click (:func:`feedback_click`): form-encoded,
        its JSON in the ``payload`` field, as Slack sends it."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, "application/x-www-form-urlencoded", **options)


# ------------------------------------------------------------------------------------------ emulator


@dataclass
class Call:
    """One Web API call as received."""

    method: str
    args: dict[str, Any]
    status: int
    error: str | None
    at: float


@dataclass
class Message:
    """A message the bot posted (``kind`` "message" or "stream")."""

    channel: str
    ts: str
    text: str
    thread_ts: str | None
    kind: str = "message"
    streaming: bool = False
    edits: int = 0
    deleted: bool = False
    history: list[str] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None


@dataclass
class Ephemeral:
    """A chat.postEphemeral message."""

    channel: str
    user: str
    text: str
    thread_ts: str | None


@dataclass
class SharedFile:
    """A file uploaded to the emulated workspace: its bytes and the file object events carry."""

    data: bytes
    info: dict[str, Any]


class SlackEmulator(LoopbackServer):
    """The Slack Web API on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        text_limit: int = TEXT_LIMIT,
        host: str = "127.0.0.1",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.text_limit = text_limit
        self.host = host
        self.port = 0
        self.base_url = ""
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.ephemerals: list[Ephemeral] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[dict[str, Any]] = []
        self.reactions: set[tuple[str, str, str]] = set()
        self.users: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, list[dict[str, Any]]] = {}  # what people wrote, per channel
        self.prompts: list[dict[str, Any]] = []  # assistant.threads.setSuggestedPrompts calls
        self.titles: list[dict[str, Any]] = []  # assistant.threads.setTitle calls
        self.views: dict[str, dict[str, Any]] = {}  # views.publish: the Home view of each user
        # Slack may return fewer messages than asked for (the rest behind the cursor): at most this many.
        self.page_max = _PAGE_MAX
        self._rate_limits: dict[str, list[int]] = {}
        self._failures: dict[str, tuple[str, int | None]] = {}
        self._refusing: dict[str, str] = {}  # channel -> the error every write to it gets
        self._garbled: dict[str, int] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self.sockets_opened = 0  # Socket Mode connections accepted so far
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.files: dict[str, SharedFile] = {}
        self.downloads: list[tuple[str, int]] = []  # (file id, HTTP status) of every download attempt

    # -- lifecycle

    async def start(self) -> str:
        """Serve; returns the base URL (``http://127.0.0.1:PORT``); the Web API is under ``/api/``."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/response/{key}", self._response)
        app.router.add_get("/files-pri/{team_file}/{name}", self._file_page)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._download)
        app.router.add_get("/signin", self._signin)
        self.port = 0
        return await self._serve(app)

    async def stop(self) -> None:
        """Close sockets and stop serving."""
        for ws in list(self._sockets):
            await ws.close()
        await self._close()

    @property
    def api_url(self) -> str:
        """What ``slack.base_url`` should be."""
        return f"{self.base_url}/api/"

    def http_mode_config(self, **extra: Any) -> dict[str, Any]:
        """The ``slack:`` section of a ``gembot run`` in http mode on this emulator, the secrets read from
        ``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET`` (``extra`` adds or overrides keys)."""
        return {
            "enabled": True,
            "mode": "http",
            "bot_token": "${SLACK_BOT_TOKEN}",
            "signing_secret": "${SLACK_SIGNING_SECRET}",
            "base_url": self.api_url,
            "update_interval": "100ms",
            **extra,
        }

    def response_url(self, key: str = "") -> str:
        """A slash command ``response_url`` that lands in :attr:`responses`."""
        return f"{self.base_url}/response/{key or uuid.uuid4().hex}"

    # -- files

    def add_file(
        self,
        data: bytes,
        name: str,
        mimetype: str,
        *,
        filetype: str = "",
        mode: str = "hosted",
        user: str = "U0USER",
        declared_size: int | None = None,
    ) -> dict[str, Any]:
        """Upload a file; returns its file object as events carry it (``files`` of a message): the
        download link needs the bot token (``files:read``). ``mode`` "snippet" is a text snippet,
        "external" a file hosted elsewhere (no download link). ``declared_size`` overrides ``size``."""
        file_id = f"F{next(_ts_counter):010d}"
        base = f"{self.base_url}/files-pri/{TEAM_ID}-{file_id}"
        info: dict[str, Any] = {
            "id": file_id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype or name.rpartition(".")[2] or "binary",
            "pretty_type": (filetype or name.rpartition(".")[2]).upper(),
            "user": user,
            "user_team": TEAM_ID,
            "editable": mode == "snippet",
            "size": len(data) if declared_size is None else declared_size,
            "mode": mode,
            "is_external": mode == "external",
            "external_type": "gdrive" if mode == "external" else "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{base}/{name}",
            "permalink": f"{self.base_url}/files/{user}/{file_id}/{name}",
            "has_rich_preview": False,
            "file_access": "visible",
        }
        if mode != "external":
            info["url_private_download"] = f"{base}/download/{name}"
        self.files[file_id] = SharedFile(data, info)
        return info

    def _shared(self, request: web.Request) -> SharedFile | None:
        file_id = request.match_info["team_file"].removeprefix(f"{TEAM_ID}-")
        shared = self.files.get(file_id)
        return shared if shared is not None and shared.info["name"] == request.match_info["name"] else None

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """``url_private_download``: the bytes for the bot token; Slack's sign-in redirect otherwise."""
        shared = self._shared(request)
        file_id = request.match_info["team_file"].removeprefix(f"{TEAM_ID}-")
        if request.headers.get("Authorization", "") != f"Bearer {self.bot_token}":
            self.downloads.append((file_id, 302))
            self._notify()
            raise web.HTTPFound(f"{self.base_url}/signin?redir={request.path}")
        if shared is None:
            self.downloads.append((file_id, 404))
            self._notify()
            return web.Response(status=404, text="file not found")
        self.downloads.append((file_id, 200))
        self._notify()
        disposition = f'attachment; filename="{shared.info["name"]}"'
        return web.Response(
            body=shared.data,
            content_type=str(shared.info["mimetype"] or "application/octet-stream"),
            headers={"Content-Disposition": disposition},
        )

    async def _file_page(self, request: web.Request) -> web.StreamResponse:
        return await self._download(request)

    async def _signin(self, _request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Sign in to Slack</body></html>", content_type="text/html")

    @staticmethod
    def connect_stub(info: Mapping[str, Any]) -> dict[str, Any]:
        """The file object an event carries for a file shared over Slack Connect: only a stub, the
        real one comes from ``files.info``."""
        return {
            "id": info["id"],
            "mode": "file_access",
            "file_access": "check_file_info",
            "created": 0,
            "timestamp": 0,
            "user": "",
        }

    def m_files_info(self, args: Mapping[str, Any]) -> dict[str, Any]:
        shared = self.files.get(str(args.get("file") or ""))
        if shared is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": shared.info, "comments": [], "response_metadata": {"next_cursor": ""}}

    def delete_file(self, file_id: str) -> None:
        """Delete a file: its link then answers 404 (its events still carry the old file object)."""
        self.files.pop(file_id, None)

    # -- scripting

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls of ``method`` get HTTP 429 with ``Retry-After: retry_after``."""
        self._rate_limits.setdefault(method, []).extend([retry_after] * times)

    def fail(self, method: str, error: str, times: int | None = None) -> None:
        """Answer ``method`` with ``{"ok": false, "error": error}`` (``times`` calls, or forever)."""
        self._failures[method] = (error, times)

    def refuse(self, channel: str, error: str | None) -> None:
        """Refuse every message written to ``channel`` with ``error``, as Slack does for a channel that
        is gone (``channel_not_found``), that the bot is not in (``not_in_channel``) or that is archived
        (``is_archived``); None writes to it again."""
        if error is None:
            self._refusing.pop(channel, None)
        else:
            self._refusing[channel] = error

    def garble(self, method: str, times: int = 1) -> None:
        """Answer ``times`` calls of ``method`` with an empty JSON array after carrying them out (as a
        broken proxy might), so the client fails reading it."""
        self._garbled[method] = times

    def post_as_user(
        self, channel: str, text: str, *, user: str, thread_ts: str | None = None, **extra: Any
    ) -> str:
        """Put a message ``user`` wrote into ``channel`` (for conversations.history/replies); its ts."""
        ts = new_ts()
        message: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": ts, **extra}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.conversations.setdefault(channel, []).append(message)
        return ts

    def clear(self) -> None:
        """Forget calls, messages and scripted behaviour (sockets stay open)."""
        self.conversations.clear()
        self.prompts.clear()
        self.titles.clear()
        self.views.clear()
        self.page_max = _PAGE_MAX
        self.calls.clear()
        self.messages.clear()
        self.ephemerals.clear()
        self.responses.clear()
        self.statuses.clear()
        self.acks.clear()
        self.downloads.clear()
        self._rate_limits.clear()
        self._failures.clear()
        self._refusing.clear()
        self._garbled.clear()

    # -- inspection

    def called(self, method: str) -> list[Call]:
        """Calls of ``method`` (rate-limited and failed ones included)."""
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str | None) -> list[Message]:
        """The bot's visible messages in a thread (``thread_ts=None``: the channel's top level)."""
        return [
            m for m in self.messages if m.channel == channel and m.thread_ts == thread_ts and not m.deleted
        ]

    async def finished(self, channel: str, thread_ts: str | None, count: int = 1) -> list[str]:
        """Wait until the bot shows ``count`` finished messages there (no stream open, no "…"
        placeholder); returns the texts of :meth:`thread`."""

        def done() -> bool:
            messages = self.thread(channel, thread_ts)
            return len(messages) >= count and not any(m.streaming or m.text == "…" for m in messages)

        await self.wait_for(done)
        return self.texts(channel, thread_ts)

    def texts(self, channel: str, thread_ts: str | None) -> list[str]:
        """The texts of :meth:`thread`."""
        return [m.text for m in self.thread(channel, thread_ts)]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 15.0) -> Any:  # noqa: ASYNC109
        """Wait until ``condition()`` is truthy (re-checked whenever a call arrives); returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    "condition not met; calls: " + ", ".join(c.method for c in self.calls[-30:])
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.1))

    # -- socket mode

    async def wait_socket(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Wait until a Socket Mode client is connected."""
        await self.wait_for(lambda: self._sockets, timeout)

    async def drop_socket(self) -> None:
        """Close the newest Socket Mode connection from Slack's side (as Slack does when it rotates them)."""
        await self._sockets[-1].close()

    async def send_envelope(
        self,
        payload: dict[str, Any],
        *,
        kind: str = "events_api",
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Push one envelope to the newest socket; returns its envelope_id (acks land in :attr:`acks`)."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        await self._sockets[-1].send_str(json.dumps(envelope))
        return envelope_id

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.sockets_opened += 1
        self._notify()
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "emulator", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if isinstance(data, dict) and "envelope_id" in data:
                        self.acks[str(data["envelope_id"])] = data
                        self._notify()
        finally:
            self._sockets.remove(ws)
        return ws

    # -- HTTP

    async def _response(self, request: web.Request) -> web.Response:
        self.responses.append((request.match_info["key"], await request.json()))
        self._notify()
        return web.Response(text="ok")

    def _notify(self) -> None:
        self._changed.set()

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        raw = await request.read()
        ctype = request.content_type
        if raw and ctype == "application/json":
            body = json.loads(raw)
            if isinstance(body, dict):
                args.update(body)
        elif raw and ctype == "application/x-www-form-urlencoded":
            args.update(dict(parse_qsl(raw.decode(), keep_blank_values=True)))
        elif ctype.startswith("multipart/"):
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        auth = request.headers.get("Authorization", "")
        token = (
            auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else str(args.get("token", ""))
        )
        status, body, headers = self._dispatch(method, args, token)
        self.calls.append(
            Call(method, args, status, None if body.get("ok") else body.get("error"), time.time())
        )
        self._notify()
        if body.get("ok") and self._garbled.get(method, 0) > 0:
            self._garbled[method] -= 1
            return web.json_response([], status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    def _dispatch(
        self, method: str, args: dict[str, Any], token: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        limits = self._rate_limits.get(method)
        if limits:
            retry_after = limits.pop(0)
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != wanted:
            error = "not_allowed_token_type" if token in (self.app_token, self.bot_token) else "invalid_auth"
            return 200, {"ok": False, "error": error}, {}
        failure = self._failures.get(method)
        if failure is not None:
            error, times = failure
            if times is not None:
                if times <= 1:
                    del self._failures[method]
                else:
                    self._failures[method] = (error, times - 1)
            return 200, {"ok": False, "error": error}, {}
        channel = str(args.get("channel") or args.get("channel_id") or "")
        if channel in self._refusing and (method in _WRITES or method in _READS):
            return 200, {"ok": False, "error": self._refusing[channel]}, {}
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method", "req_method": method}, {}
        result: dict[str, Any] = handler(args)
        return 200, result, {}

    # -- methods (m_<method with dots as underscores>)

    def m_auth_test(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://emulated.slack.com/",
            "team": "Emulated",
            "user": "gembot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def m_apps_connections_open(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://{self.host}:{self.port}/socket?ticket={uuid.uuid4()}"}

    def m_users_info(self, args: Mapping[str, Any]) -> dict[str, Any]:
        user = str(args.get("user", ""))
        if not user.startswith(("U", "W")):
            return {"ok": False, "error": "user_not_found"}
        profile = self.users.get(user, {})
        name = profile.get("display_name", f"name-{user.lower()}")
        return {
            "ok": True,
            "user": {
                "id": user,
                "name": name,
                "real_name": profile.get("real_name", name),
                "locale": profile.get("locale", "en-US"),
                "profile": {"display_name": name, "real_name": profile.get("real_name", name)},
                "is_bot": False,
            },
        }

    def _find(self, channel: str, ts: str) -> Message | None:
        for message in self.messages:
            if message.channel == channel and message.ts == ts and not message.deleted:
                return message
        return None

    def m_chat_postMessage(self, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        text = str(args.get("text") or args.get("markdown_text") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not text and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if len(text) > self.text_limit:
            return {"ok": False, "error": "msg_too_long"}
        blocks = _blocks_of(args)
        if isinstance(blocks, str):
            return {"ok": False, "error": "invalid_blocks", "errors": [blocks]}
        ts = new_ts()
        thread_ts = str(args["thread_ts"]) if args.get("thread_ts") else None
        metadata = _json_arg(args.get("metadata"))
        self.messages.append(
            Message(channel, ts, text, thread_ts, history=[text], blocks=blocks, metadata=metadata)
        )
        message = {"type": "message", "text": text, "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts}
        if thread_ts:
            message["thread_ts"] = thread_ts
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def m_chat_update(self, args: Mapping[str, Any]) -> dict[str, Any]:
        message = self._find(str(args.get("channel", "")), str(args.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        text = str(args.get("text") or args.get("markdown_text") or "")
        if not text and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if len(text) > self.text_limit:
            return {"ok": False, "error": "msg_too_long"}
        if message.streaming:
            return {"ok": False, "error": "cant_update_message"}
        blocks = _blocks_of(args)
        if isinstance(blocks, str):
            return {"ok": False, "error": "invalid_blocks", "errors": [blocks]}
        message.blocks = blocks
        message.text = text
        message.edits += 1
        message.history.append(text)
        if args.get("metadata"):
            message.metadata = _json_arg(args.get("metadata"))
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": text}

    def m_chat_delete(self, args: Mapping[str, Any]) -> dict[str, Any]:
        message = self._find(str(args.get("channel", "")), str(args.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.deleted = True
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def m_chat_postEphemeral(self, args: Mapping[str, Any]) -> dict[str, Any]:
        channel, user = str(args.get("channel", "")), str(args.get("user", ""))
        if not channel or not user:
            return {"ok": False, "error": "invalid_arguments"}
        thread_ts = str(args["thread_ts"]) if args.get("thread_ts") else None
        self.ephemerals.append(Ephemeral(channel, user, str(args.get("text", "")), thread_ts))
        return {"ok": True, "message_ts": new_ts()}

    @staticmethod
    def _stream_text(args: Mapping[str, Any]) -> str:
        text = str(args.get("markdown_text") or "")
        chunks = args.get("chunks")
        if isinstance(chunks, str):
            chunks = json.loads(chunks)
        for chunk in chunks or []:
            if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
                text += str(chunk.get("text", ""))
        return text

    def m_chat_startStream(self, args: Mapping[str, Any]) -> dict[str, Any]:
        channel, thread_ts = str(args.get("channel", "")), str(args.get("thread_ts", ""))
        if not channel or not thread_ts:
            return {"ok": False, "error": "invalid_arguments"}
        if not channel.startswith("D") and not (
            args.get("recipient_user_id") and args.get("recipient_team_id")
        ):
            return {"ok": False, "error": "missing_recipient_team_id"}
        text = self._stream_text(args)
        if len(text) > STREAM_TEXT_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        ts = new_ts()
        self.messages.append(
            Message(channel, ts, text, thread_ts, kind="stream", streaming=True, history=[text])
        )
        return {"ok": True, "channel": channel, "ts": ts}

    def _streaming(self, args: Mapping[str, Any]) -> Message | dict[str, Any]:
        message = self._find(str(args.get("channel", "")), str(args.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if not message.streaming:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        text = self._stream_text(args)
        if len(text) > STREAM_TEXT_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        message.text += text
        message.history.append(text)
        return message

    def m_chat_appendStream(self, args: Mapping[str, Any]) -> dict[str, Any]:
        if not self._stream_text(args):
            return {"ok": False, "error": "invalid_arguments"}
        found = self._streaming(args)
        if isinstance(found, dict):
            return found
        return {"ok": True, "channel": found.channel, "ts": found.ts}

    def m_chat_stopStream(self, args: Mapping[str, Any]) -> dict[str, Any]:
        blocks = _blocks_of(args)
        if isinstance(blocks, str):
            return {"ok": False, "error": "invalid_blocks", "errors": [blocks]}
        found = self._streaming(args)
        if isinstance(found, dict):
            return found
        found.blocks = blocks
        found.streaming = False
        return {"ok": True, "channel": found.channel, "ts": found.ts, "message": {"text": found.text}}

    def m_assistant_threads_setStatus(self, args: Mapping[str, Any]) -> dict[str, Any]:
        if not args.get("channel_id") or not args.get("thread_ts") or "status" not in args:
            return {"ok": False, "error": "invalid_arguments"}
        self.statuses.append(dict(args))
        return {"ok": True}

    def m_assistant_threads_setSuggestedPrompts(self, args: Mapping[str, Any]) -> dict[str, Any]:
        prompts = _json_arg(args.get("prompts"))
        if not args.get("channel_id") or not args.get("thread_ts") or not isinstance(prompts, list):
            return {"ok": False, "error": "invalid_arguments"}
        if not 1 <= len(prompts) <= 4 or not all(
            isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts
        ):
            return {"ok": False, "error": "invalid_arguments"}
        self.prompts.append({**args, "prompts": prompts})
        return {"ok": True}

    def m_assistant_threads_setTitle(self, args: Mapping[str, Any]) -> dict[str, Any]:
        if not args.get("channel_id") or not args.get("thread_ts") or not args.get("title"):
            return {"ok": False, "error": "invalid_arguments"}
        self.titles.append(dict(args))
        return {"ok": True}

    def m_views_publish(self, args: Mapping[str, Any]) -> dict[str, Any]:
        view = _json_arg(args.get("view"))
        user = str(args.get("user_id") or "")
        if not user.startswith(("U", "W")):
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or len(blocks) > 100:
            return {"ok": False, "error": "invalid_blocks"}
        self.views[user] = view
        view_id = "V" + uuid.uuid4().hex[:10].upper()
        return {"ok": True, "view": {**view, "id": view_id, "team_id": TEAM_ID, "app_id": APP_ID}}

    # -- reading conversations

    def _everything(self, channel: str, with_metadata: bool) -> list[dict[str, Any]]:
        """What the channel holds as the Web API shows it, oldest first: people's and the bot's messages."""
        found = list(self.conversations.get(channel, []))
        for m in self.messages:
            if m.channel != channel or m.deleted:
                continue
            shown: dict[str, Any] = {
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "text": m.text,
                "ts": m.ts,
            }
            if m.thread_ts:
                shown["thread_ts"] = m.thread_ts
            if with_metadata and m.metadata:
                shown["metadata"] = m.metadata
            found.append(shown)
        return sorted(found, key=lambda m: float(m["ts"]))

    def _page(self, messages: list[dict[str, Any]], args: Mapping[str, Any]) -> dict[str, Any]:
        try:
            start = int(base64.b64decode(str(args.get("cursor") or "")).decode() or 0)
            limit = int(args.get("limit") or _PAGE_DEFAULT)
        except ValueError:
            return {"ok": False, "error": "invalid_cursor"}
        limit = max(1, min(limit, self.page_max))
        chunk = messages[start : start + limit]
        more = start + limit < len(messages)
        cursor = base64.b64encode(str(start + limit).encode()).decode() if more else ""
        return {"ok": True, "messages": chunk, "has_more": more, "response_metadata": {"next_cursor": cursor}}

    def m_conversations_history(self, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        top = [
            m
            for m in self._everything(channel, _flag(args.get("include_all_metadata")))
            if not m.get("thread_ts") or m["thread_ts"] == m["ts"]
        ]
        return {**self._page(list(reversed(top)), args), "pin_count": 0}

    def m_conversations_replies(self, args: Mapping[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        everything = self._everything(channel, _flag(args.get("include_all_metadata")))
        parent = next((m for m in everything if m["ts"] == ts), None)
        replies = [m for m in everything if m.get("thread_ts") == ts and m["ts"] != ts]
        if parent is None and not replies:
            return {"ok": False, "error": "thread_not_found"}
        thread = ([parent] if parent is not None else []) + replies
        oldest = args.get("oldest")
        if oldest:
            thread = [m for m in thread if float(m["ts"]) >= float(str(oldest))]
        return self._page(thread, args)

    def m_reactions_add(self, args: Mapping[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel", "")), str(args.get("timestamp", "")), str(args.get("name", "")))
        if key in self.reactions:
            return {"ok": False, "error": "already_reacted"}
        self.reactions.add(key)
        return {"ok": True}

    def m_reactions_remove(self, args: Mapping[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel", "")), str(args.get("timestamp", "")), str(args.get("name", "")))
        if key not in self.reactions:
            return {"ok": False, "error": "no_reaction"}
        self.reactions.discard(key)
        return {"ok": True}


def _json_arg(value: Any) -> Any:
    """A structured argument: as sent in a JSON body, or JSON-encoded in a query or form field."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")
