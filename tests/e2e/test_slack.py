"""``gembot run`` (Slack http mode) as a subprocess against the Slack and Gemini emulators.

One gembot process serves the whole module; every test uses its own channels and threads. To prove that
something was *not* answered, a test sends a sentinel message in the same conversation afterwards: answers
within a conversation are delivered in order, so once the sentinel is answered, the earlier deliveries
have been dealt with.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from adapters.slack.history import DEFAULT_MESSAGES, MAX_MESSAGES
from adapters.slack.markup import MESSAGE_LIMIT
from bot import i18n
from tests.e2e.gembot_process import (
    SlackWorld,
    slack_world,
    unique,
)
from tests.fakes.gemini import ErrorReply, Reply
from tests.fakes.slack import (
    BOT_ID,
    BOT_USER_ID,
    event_callback,
    mention_event,
    message_event,
    new_ts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ADMIN = "UADMIN01"
World = SlackWorld


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with slack_world(tmp_path_factory.mktemp("slack-e2e"), admin_ids=[ADMIN]) as made:
        yield made


@pytest.fixture(autouse=True)
def _fresh(world: World) -> None:
    world.gemini.reset()
    world.slack.clear()


async def answered(world: World, channel: str, thread_ts: str | None, count: int = 1) -> list[str]:
    """Wait until the bot shows ``count`` finished messages there; returns their texts."""
    return await world.slack.finished(channel, thread_ts, count)


def gemini_calls_with(world: World, text: str) -> int:
    return sum(
        1 for request in world.gemini.requests if request.contents() and text in request.contents()[-1][1]
    )


# ------------------------------------------------------------------------------------------------ tests


async def test_mention_answered_in_its_thread_then_follow_up_without_mention(world: World) -> None:
    channel, ts = unique("C"), new_ts()
    status, _ = await world.sender.event(mention_event("hello there", channel=channel, user="U1", ts=ts))
    assert status == 200
    assert await answered(world, channel, ts) == ["echo: name-u1: hello there"]
    assert world.slack.thread(channel, ts)[0].kind == "stream"
    assert world.slack.statuses[0]["thread_ts"] == ts

    await world.sender.event(message_event("and more", channel=channel, user="U2", thread_ts=ts))
    texts = await answered(world, channel, ts, 2)
    assert texts[1] == "echo: name-u2: and more"
    assert world.gemini.contents(-1) == [
        ("user", "name-u1: hello there"),
        ("model", "echo: name-u1: hello there"),
        ("user", "name-u2: and more"),
    ]
    # A thread the bot is not part of is not answered without a mention.
    other = new_ts()
    await world.sender.event(message_event("not for you", channel=channel, user="U2", thread_ts=other))
    await world.sender.event(mention_event("sentinel", channel=channel, user="U2", thread_ts=other))
    assert await answered(world, channel, other) == ["echo: name-u2: sentinel"]
    assert gemini_calls_with(world, "not for you") == 0


async def test_dm_top_level_and_thread_in_dm(world: World) -> None:
    dm = unique("D")
    await world.sender.event(message_event("hi in DM", channel=dm, user="U3"))
    assert await answered(world, dm, None) == ["echo: hi in DM"]
    parent = world.slack.thread(dm, None)[0].ts
    await world.sender.event(message_event("in a thread", channel=dm, user="U3", thread_ts=parent))
    assert await answered(world, dm, parent) == ["echo: in a thread"]
    assert world.gemini.contents(-1) == [("user", "in a thread")]  # its own conversation


async def test_bot_and_self_messages_are_ignored(world: World) -> None:
    dm = unique("D")
    await world.sender.event(message_event("from a bot", channel=dm, user="UOTHERBOT", bot_id="B999"))
    await world.sender.event(
        message_event("legacy bot", channel=dm, user=None, subtype="bot_message", bot_id="B998")
    )
    await world.sender.event(message_event("myself", channel=dm, user=BOT_USER_ID, bot_id=BOT_ID))
    await world.sender.event(message_event("edited", channel=dm, user="U4", subtype="message_changed"))
    await world.sender.event(message_event("sentinel", channel=dm, user="U4"))
    assert await answered(world, dm, None) == ["echo: sentinel"]
    assert len(world.gemini.requests) == 1


async def test_same_event_three_times_is_answered_once(world: World) -> None:
    dm = unique("D")
    body = event_callback(message_event("only once", channel=dm, user="U5"))
    statuses = [(await world.sender.event({}, envelope=body, retry_num=n))[0] for n in (None, 1, 2)]
    assert statuses == [200, 200, 200]
    await world.sender.event(message_event("sentinel", channel=dm, user="U5"))
    texts = await answered(world, dm, None, 2)
    assert texts == ["echo: only once", "echo: sentinel"]
    assert gemini_calls_with(world, "only once") == 1


async def test_mention_and_channel_message_of_one_message_answered_once(world: World) -> None:
    channel, ts = unique("C"), new_ts()
    mention = mention_event("twice delivered", channel=channel, user="U6", ts=ts)
    await world.sender.event(mention)
    await world.sender.event(message_event(mention["text"], channel=channel, user="U6", ts=ts))
    await world.sender.event(mention_event("sentinel", channel=channel, user="U6", thread_ts=ts))
    texts = await answered(world, channel, ts, 2)
    assert len(texts) == 2 and texts[1].endswith("sentinel")
    assert gemini_calls_with(world, "twice delivered") == 1


async def test_bad_signature_and_stale_timestamp_are_refused(world: World) -> None:
    dm = unique("D")
    status, _ = await world.sender.event(
        message_event("forged", channel=dm, user="U7"), secret="wrong-secret"
    )
    assert status == 401
    stale = int(time.time()) - 6 * 60
    status, _ = await world.sender.event(message_event("replayed", channel=dm, user="U7"), timestamp=stale)
    assert status == 401
    await world.sender.event(message_event("sentinel", channel=dm, user="U7"))
    assert await answered(world, dm, None) == ["echo: sentinel"]
    assert len(world.gemini.requests) == 1


async def test_slash_commands_are_ephemeral(world: World) -> None:
    dm = unique("D")
    await world.sender.event(message_event("remember me", channel=dm, user="U8"))
    await answered(world, dm, None)
    for text, key in (
        ("help", "help"),
        ("", "empty"),
        ("reset", "reset"),
        ("bogus", "bogus"),
        ("forget", "forget"),
    ):
        status, _ = await world.sender.command(
            text, user="U8", channel=dm, response_url=world.slack.response_url(key)
        )
        assert status == 200
    await world.slack.wait_for(lambda: len(world.slack.responses) == 5)
    replies = dict(world.slack.responses)
    assert all(r["response_type"] == "ephemeral" for r in replies.values())
    assert "/gembot reset" in replies["help"]["text"] and "Google Gemini" in replies["help"]["text"]
    summaries = (
        "/gembot summarize [N] - summarise this channel's last N messages "
        f"({DEFAULT_MESSAGES} by default, at most {MAX_MESSAGES})"
    )
    assert summaries in replies["help"]["text"]
    assert replies["empty"]["text"] == replies["help"]["text"]
    assert "afresh (1 exchange forgotten)" in replies["reset"]["text"]
    assert "Unknown command" in replies["bogus"]["text"]
    assert replies["forget"]["text"].startswith("Done:")
    assert world.slack.texts(dm, None) == ["echo: remember me"]  # nothing posted to the channel

    # `@gembot reset` in a thread resets that thread (admins only in channels), answered ephemerally.
    channel, ts = unique("C"), new_ts()
    await world.sender.event(mention_event("first", channel=channel, user=ADMIN, ts=ts))
    await answered(world, channel, ts)
    await world.sender.event(mention_event("reset", channel=channel, user="U8", thread_ts=ts))
    await world.sender.event(mention_event("reset", channel=channel, user=ADMIN, thread_ts=ts))
    await world.slack.wait_for(lambda: len(world.slack.ephemerals) == 2)
    denied, done = world.slack.ephemerals
    assert "Only an admin" in denied.text and denied.thread_ts == ts
    assert "afresh (1 exchange forgotten)" in done.text and done.user == ADMIN


async def test_stats_for_admins_only(world: World) -> None:
    for user in (ADMIN, "U9"):
        await world.sender.command(
            "stats", user=user, channel=unique("C"), response_url=world.slack.response_url(user)
        )
    await world.slack.wait_for(lambda: len(world.slack.responses) == 2)
    replies = {key: body["text"] for key, body in world.slack.responses}
    assert "gembot stats" in replies[ADMIN] and "[1h]" in replies[ADMIN]
    assert "admins only" in replies["U9"]


async def test_bad_gemini_key_is_reported_to_the_user_and_once_to_the_admins(world: World) -> None:
    world.gemini.script(ErrorReply.bad_key(), ErrorReply.bad_key())
    for user in ("U21", "U22"):
        dm = unique("D")
        await world.sender.event(message_event("anyone there?", channel=dm, user=user))
        await world.slack.wait_for(
            lambda dm=dm: "API key is not accepted" in "".join(world.slack.texts(dm, None))
        )
        assert len(world.slack.texts(dm, None)) == 1  # the placeholder became the notice
    await world.slack.wait_for(lambda: bool(world.slack.texts(ADMIN, None)))
    await asyncio.sleep(0.5)
    alerts = world.slack.texts(ADMIN, None)
    assert len(alerts) == 1 and "API key" in alerts[0]


async def test_long_answer_is_split_into_valid_messages(world: World) -> None:
    paragraphs = [f"Paragraph {i}: " + " ".join(f"**w{i}x{j}**" for j in range(60)) for i in range(20)]
    code = (
        "```python\n"
        + "\n".join(f"print({i})  # a line of code with <html> & such" for i in range(120))
        + "\n```"
    )
    answer = "\n\n".join([*paragraphs[:10], code, *paragraphs[10:]])
    world.gemini.script(Reply(text=answer))
    dm = unique("D")
    await world.sender.event(message_event("write a lot", channel=dm, user="U10"))
    await world.slack.wait_for(
        lambda: (t := world.slack.texts(dm, None)) and len(t) > 2 and "w19x59" in t[-1], timeout=30
    )
    texts = world.slack.texts(dm, None)
    assert all(len(t) <= MESSAGE_LIMIT for t in texts)
    assert all(t.count("```") % 2 == 0 for t in texts)
    joined = "\n".join(texts)
    assert all(f"*w{i}x{j}*" in joined for i in range(20) for j in range(60))
    assert all(f"print({i})" in joined for i in range(120))
    assert "&lt;html&gt; &amp; such" in joined and "<html>" not in joined
    assert not re.search(r"\*\*", joined)


async def test_streamed_answer_completes_under_rate_limits(world: World) -> None:
    chunks = [f"part {i} of a streamed answer. " for i in range(12)]
    world.gemini.script(Reply(chunks=chunks, chunk_delay=0.05))
    world.slack.rate_limit("chat.startStream", times=1, retry_after=1)
    world.slack.rate_limit("chat.appendStream", times=2, retry_after=1)
    channel, ts = unique("C"), new_ts()
    await world.sender.event(mention_event("stream please", channel=channel, user="U11", ts=ts))
    await world.slack.wait_for(
        lambda: (m := world.slack.thread(channel, ts)) and not m[-1].streaming, timeout=30
    )
    assert world.slack.texts(channel, ts) == ["".join(chunks)]
    assert [c.status for c in world.slack.called("chat.startStream")] == [429, 200]
    assert sum(c.status == 429 for c in world.slack.called("chat.appendStream")) == 2


async def test_event_is_acknowledged_before_a_slow_answer_is_posted(world: World) -> None:
    """Slack retries an event it has no 200 for within 3 s: the answer must never hold up the ack."""
    world.gemini.script(Reply(text="a slow answer", latency=2.0))
    dm = unique("D")
    status, _ = await world.sender.event(message_event("take your time", channel=dm, user="U12"))
    acknowledged = time.time()
    assert status == 200
    assert await answered(world, dm, None) == ["a slow answer"]
    shown = [
        call
        for call in world.slack.calls
        if call.method in ("chat.postMessage", "chat.update") and "slow answer" in str(call.args.get("text"))
    ]
    assert shown and acknowledged < shown[0].at  # the same clock: an order, not a speed


# ------------------------------------------------------------------------------------------------ files

MEDIA = Path(__file__).parents[1] / "media"


def inline_data(world: World) -> list[list[dict[str, Any]]]:
    """The inlineData parts of the newest user content of every Gemini request so far."""
    return [
        [p["inlineData"] for p in r.body["contents"][-1]["parts"] if "inlineData" in p]
        for r in world.gemini.requests
    ]


async def test_a_pdf_shared_in_the_bots_thread_reaches_gemini_as_pdf(world: World) -> None:
    channel, ts = unique("C"), new_ts()
    await world.sender.event(mention_event("let's read a report", channel=channel, user="U7", ts=ts))
    await answered(world, channel, ts)
    pdf = (MEDIA / "report.pdf").read_bytes()
    shared = world.slack.add_file(pdf, "report.pdf", "application/pdf", filetype="pdf", user="U7")
    event = message_event(
        "what is on page 3?", channel=channel, user="U7", thread_ts=ts, subtype="file_share", files=[shared]
    )
    await world.sender.event(event)
    texts = await answered(world, channel, ts, 2)
    assert texts[1] == "echo: name-u7: what is on page 3?"
    assert inline_data(world)[-1] == [{"mimeType": "application/pdf", "data": base64.b64encode(pdf).decode()}]
    assert world.slack.downloads == [(shared["id"], 200)]
    await world.sender.event(mention_event("and page 4?", channel=channel, user="U7", thread_ts=ts))
    await answered(world, channel, ts, 3)
    assert "[PDF report.pdf]" in world.gemini.requests[-1].contents()[2][1]  # the history's marker


async def test_a_snippet_in_a_dm_is_a_text_document(world: World) -> None:
    dm = unique("D")
    code = b"def add(a, b):\n    return a + b\n"
    snippet = world.slack.add_file(code, "add.py", "text/x-python", filetype="python", mode="snippet")
    await world.sender.event(message_event("", channel=dm, user="U8", subtype="file_share", files=[snippet]))
    await answered(world, dm, None)
    assert inline_data(world) == [[{"mimeType": "text/plain", "data": base64.b64encode(code).decode()}]]


async def test_files_that_cannot_be_fetched_are_answered_and_never_downloaded_when_too_large(
    world: World,
) -> None:
    dm = unique("D")
    gone = world.slack.add_file(b"%PDF-1.4 gone", "gone.pdf", "application/pdf")
    world.slack.delete_file(gone["id"])
    huge = world.slack.add_file(b"", "huge.mp4", "video/mp4", declared_size=25 * 1024 * 1024)
    for text, shared in (("read", gone), ("watch", huge)):
        event = message_event(text, channel=dm, user="U9", subtype="file_share", files=[shared])
        await world.sender.event(event)
    await world.sender.event(message_event("sentinel", channel=dm, user="U9"))
    texts = await answered(world, dm, None, 3)
    assert texts == [  # notices are shown in italics
        "_" + i18n.text("en", "media_unavailable", name="gone.pdf") + "_",
        "_" + i18n.text("en", "media_too_large", name="huge.mp4", size="25.0 MB", limit="20MB") + "_",
        "echo: sentinel",
    ]
    assert world.slack.downloads == [(gone["id"], 404)]  # the large one was never fetched
