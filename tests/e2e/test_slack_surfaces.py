"""Slack's own surfaces through ``gembot run`` (http mode) against the Slack and Gemini emulators: the
assistant panel, thread and channel summaries, and the App Home tab."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.gembot_process import slack_world
from tests.fakes.gemini import GeminiEmulator, Reply
from tests.fakes.slack import (
    EventSender,
    SlackEmulator,
    app_home_opened_event,
    assistant_thread_event,
    block_action,
    message_event,
    message_shortcut,
    new_ts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

# The channels (and DMs) the bot serves; CHANNEL_OTHER is a channel it does not serve.
DM_PANEL, DM_PANEL_2, DM_HOME, DM_SEARCH = "DPANEL001", "DPANEL002", "DHOME0001", "DSEARCH01"
CHANNEL_BUSY, CHANNEL_THREAD, CHANNEL_OUT, CHANNEL_ASIDE = "CBUSY0001", "CTHREAD01", "COUT00001", "CASIDE001"
CHANNEL_OTHER = "COTHER001"
SERVED = [DM_PANEL, DM_PANEL_2, DM_HOME, DM_SEARCH, CHANNEL_BUSY, CHANNEL_THREAD, CHANNEL_OUT, CHANNEL_ASIDE]
SUMMARY_REQUEST = (
    "Summarise the messages above: the main points, the decisions made and the open questions. "
    "Say who said what where it matters."
)
NAMES = {"UALICE01": "Alice", "UBOB0001": "Bob", "UCAROL01": "Carol"}


@dataclass
class World:
    gemini: GeminiEmulator
    slack: SlackEmulator
    sender: EventSender
    db: Path
    log: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("slack-surfaces")
    async with slack_world(tmp, allowed_channel_ids=SERVED) as made:
        yield World(made.gemini, made.slack, made.sender, made.db, made.bot.log)


@pytest.fixture(autouse=True)
def _fresh(world: World) -> None:
    world.gemini.reset()
    world.slack.clear()
    for user, name in NAMES.items():
        world.slack.users[user] = {"display_name": name}


def statuses(world: World, thread_ts: str) -> list[str]:
    """The statuses the bot set on an assistant thread, in order ("" clears it)."""
    return [s["status"] for s in world.slack.statuses if s["thread_ts"] == thread_ts]


def stored_bytes(world: World) -> bytes:
    """Everything the SQLite database holds on disk (the file and its write-ahead log)."""
    return b"".join(
        path.read_bytes() for path in world.db.parent.iterdir() if path.name.startswith(world.db.name)
    )


def seed_channel(world: World, channel: str, count: int) -> list[tuple[str, str]]:
    """``count`` messages in ``channel`` from Alice, Bob and Carol in turn: (name, text), oldest first."""
    seeded = []
    users = list(NAMES)
    for i in range(count):
        user = users[i % len(users)]
        words = f"channel note {i:03d} token{uuid.uuid4().hex[:12]}"
        world.slack.post_as_user(channel, words, user=user)
        seeded.append((NAMES[user], words))
    return seeded


# ------------------------------------------------------------------------------------------------ tests


async def test_assistant_thread_gets_prompts_a_title_and_a_status_that_clears(world: World) -> None:
    thread = new_ts()
    started = assistant_thread_event(
        "started", user="UALICE01", channel=DM_PANEL, thread_ts=thread, context_channel=CHANNEL_ASIDE
    )
    assert (await world.sender.event(started))[0] == 200
    await world.slack.wait_for(lambda: world.slack.prompts and world.slack.thread(DM_PANEL, thread))
    greeting = world.slack.thread(DM_PANEL, thread)[0]
    assert greeting.text.startswith("Hi!")
    assert greeting.metadata == {
        "event_type": "assistant_thread_context",
        "event_payload": {"team_id": "T0TEST", "channel_id": CHANNEL_ASIDE},
    }
    prompts = world.slack.prompts[0]
    assert prompts["thread_ts"] == thread and prompts["channel_id"] == DM_PANEL
    assert [p["title"] for p in prompts["prompts"]] == [
        "Summarise this channel",
        "Explain something simply",
        "Draft a message",
        "Brainstorm ideas",
    ]

    question = message_event(
        "What   is a monad, briefly?", channel=DM_PANEL, user="UALICE01", thread_ts=thread
    )
    await world.sender.event(question)
    await world.slack.finished(DM_PANEL, thread, 2)
    assert world.slack.texts(DM_PANEL, thread)[1] == "echo: What   is a monad, briefly?"
    assert [t["title"] for t in world.slack.titles] == ["What is a monad, briefly?"]
    await world.slack.wait_for(lambda: statuses(world, thread)[-1:] == [""])
    assert statuses(world, thread) == ["is thinking…", ""]

    # The second question keeps the title; the conversation is the thread's own.
    await world.sender.event(
        message_event("And a functor?", channel=DM_PANEL, user="UALICE01", thread_ts=thread)
    )
    await world.slack.finished(DM_PANEL, thread, 3)
    assert len(world.slack.titles) == 1
    assert world.gemini.contents(-1) == [
        ("user", "What   is a monad, briefly?"),
        ("model", "echo: What   is a monad, briefly?"),
        ("user", "And a functor?"),
    ]


async def test_status_says_the_bot_searches_the_web_when_the_chat_turned_search_on(world: World) -> None:
    await world.sender.command(
        "settings search on", user="UBOB0001", channel=DM_SEARCH, response_url=world.slack.response_url()
    )
    await world.slack.wait_for(lambda: world.slack.responses)
    thread = new_ts()
    await world.sender.event(
        assistant_thread_event("started", user="UBOB0001", channel=DM_SEARCH, thread_ts=thread)
    )
    await world.slack.wait_for(lambda: world.slack.thread(DM_SEARCH, thread))
    await world.sender.event(
        message_event("News today?", channel=DM_SEARCH, user="UBOB0001", thread_ts=thread)
    )
    await world.slack.finished(DM_SEARCH, thread, 2)
    await world.slack.wait_for(lambda: statuses(world, thread)[-1:] == [""])
    assert statuses(world, thread) == ["is searching the web…", ""]
    assert world.gemini.requests[-1].body["tools"] == [{"googleSearch": {}}]


async def test_summarise_this_channel_in_the_panel_reads_the_channel_beside_it(world: World) -> None:
    thread = new_ts()
    await world.sender.event(
        assistant_thread_event(
            "started", user="UBOB0001", channel=DM_PANEL_2, thread_ts=thread, context_channel=CHANNEL_OTHER
        )
    )
    await world.slack.wait_for(lambda: world.slack.thread(DM_PANEL_2, thread))
    # A channel the bot does not serve is not remembered: the panel says which channel to open.
    await world.sender.event(
        message_event("Summarise this channel", channel=DM_PANEL_2, user="UBOB0001", thread_ts=thread)
    )
    await world.slack.finished(DM_PANEL_2, thread, 2)
    assert "Open the channel you want summarised" in world.slack.texts(DM_PANEL_2, thread)[1]
    assert not world.gemini.requests

    seeded = seed_channel(world, CHANNEL_ASIDE, 7)
    changed = assistant_thread_event(
        "context_changed",
        user="UBOB0001",
        channel=DM_PANEL_2,
        thread_ts=thread,
        context_channel=CHANNEL_ASIDE,
    )
    await world.sender.event(changed)
    await world.slack.wait_for(
        lambda: (world.slack.thread(DM_PANEL_2, thread)[0].metadata or {}).get("event_payload")
    )
    world.gemini.script(Reply(text="The channel planned a launch."))
    await world.sender.event(
        message_event("summarize this channel!", channel=DM_PANEL_2, user="UBOB0001", thread_ts=thread)
    )
    await world.slack.finished(DM_PANEL_2, thread, 3)
    assert world.slack.texts(DM_PANEL_2, thread)[2] == "The channel planned a launch."
    sent = world.gemini.requests[-1].contents()[-1][1]
    assert all(f"{name}: {words}" in sent for name, words in seeded)
    assert sent.endswith("summarize this channel!")


async def test_summarize_100_of_a_120_message_channel_sends_those_and_keeps_none(world: World) -> None:
    seeded = seed_channel(world, CHANNEL_BUSY, 120)
    world.slack.page_max = 30  # Slack returns pages smaller than asked for: the reader follows the cursor
    world.gemini.script(Reply(text="Alice, Bob and Carol wrote channel notes."))
    status, _ = await world.sender.command(
        "summarize 100", user="UCAROL01", channel=CHANNEL_BUSY, response_url=world.slack.response_url("sum")
    )
    assert status == 200
    await world.slack.wait_for(lambda: world.slack.responses)
    key, reply = world.slack.responses[0]
    assert key == "sum" and reply == {
        "response_type": "ephemeral",
        "text": "Alice, Bob and Carol wrote channel notes.",
    }
    assert world.slack.texts(CHANNEL_BUSY, None) == []  # nothing shown in the channel
    assert len(world.slack.called("conversations.history")) == 4

    (request,) = world.gemini.requests
    contents = request.contents()
    assert len(contents) == 1
    sent = contents[0][1]
    lines = sent.split("\n")
    assert lines[0] == "The last 100 messages of a Slack channel, oldest first:"
    assert lines[1:101] == [f"{name}: {words}" for name, words in seeded[20:]]
    assert lines[-2:] == ["", "name-ucarol01: " + SUMMARY_REQUEST]
    for _name, words in seeded[:20]:
        assert words not in sent

    # Only the request and the answer are kept: none of the channel's text.
    stored = stored_bytes(world)
    assert b"Alice, Bob and Carol wrote channel notes." in stored
    for _name, words in seeded:
        assert words.split()[-1].encode() not in stored
    with sqlite3.connect(world.db) as conn:
        (kept,) = conn.execute("SELECT user_text FROM turns WHERE user_id = 'UCAROL01'").fetchone()
    assert kept == "name-ucarol01: " + SUMMARY_REQUEST
    assert "token" not in world.log.read_text(encoding="utf-8")


async def test_summary_of_a_channel_the_bot_is_not_in_gets_a_notice(world: World) -> None:
    world.slack.refuse(CHANNEL_OUT, "not_in_channel")
    await world.sender.command(
        "summarize", user="UALICE01", channel=CHANNEL_OUT, response_url=world.slack.response_url("out")
    )
    await world.slack.wait_for(lambda: world.slack.responses)
    _key, reply = world.slack.responses[0]
    assert reply["response_type"] == "ephemeral"
    assert "invite me to it first" in reply["text"]
    assert not world.gemini.requests
    (call,) = world.slack.called("conversations.history")
    assert call.args["limit"] == "50"


async def test_summarise_thread_shortcut_answers_in_the_thread(world: World) -> None:
    parent = world.slack.post_as_user(CHANNEL_THREAD, "Shall we ship on Friday?", user="UALICE01")
    replies = [
        ("UBOB0001", "Only if <@UCAROL01> signs off."),
        ("UCAROL01", "Signed off.\nShip it."),
    ]
    for user, words in replies:
        world.slack.post_as_user(CHANNEL_THREAD, words, user=user, thread_ts=parent)
    last = world.slack.conversations[CHANNEL_THREAD][-1]
    world.gemini.script(Reply(text="They agreed to ship on Friday."))
    payload = message_shortcut(
        "summarize_thread",
        user="UBOB0001",
        channel=CHANNEL_THREAD,
        message=last,
        response_url=world.slack.response_url("shortcut"),
    )
    status, _ = await world.sender.interaction(payload)
    assert status == 200
    await world.slack.wait_for(lambda: world.slack.thread(CHANNEL_THREAD, parent))
    messages = world.slack.thread(CHANNEL_THREAD, parent)
    await world.slack.wait_for(lambda: not messages[0].streaming)
    assert world.slack.texts(CHANNEL_THREAD, parent) == ["They agreed to ship on Friday."]
    sent = world.gemini.requests[-1].contents()[-1][1]
    assert sent.split("\n")[:5] == [
        "The messages of a Slack thread, oldest first:",
        "Alice: Shall we ship on Friday?",
        "Bob: Only if @Carol signs off.",
        "Carol: Signed off.",
        "  Ship it.",
    ]


async def test_app_home_is_published_and_forget_me_erases_like_forget(world: World) -> None:
    await world.sender.event(message_event("remember this", channel=DM_HOME, user="UDAVE001"))
    assert await world.slack.finished(DM_HOME, None, 1) == ["echo: remember this"]

    def home_texts() -> list[str]:
        view = world.slack.views.get("UDAVE001") or {"blocks": []}
        return [b["text"]["text"] for b in view["blocks"] if b["type"] in ("section", "header")]

    # The answer shows before its use is counted: the tab shows it on the next opening.
    for _ in range(50):
        world.slack.views.clear()
        await world.sender.event(app_home_opened_event(user="UDAVE001", channel=DM_HOME))
        await world.slack.wait_for(lambda: "UDAVE001" in world.slack.views)
        if "today: 1 message;" in home_texts()[1]:
            break
    texts, view = home_texts(), world.slack.views["UDAVE001"]
    assert texts[0] == "Your use"
    assert "today: 1 message;" in texts[1]
    assert texts[3].startswith("Model: gemini-")
    assert "24 hours" in texts[5]
    (button,) = view["blocks"][-1]["elements"]
    assert button["action_id"] == "forget_me" and button["value"] == DM_HOME
    assert button["confirm"]["confirm"]["text"] == "Forget me"

    with sqlite3.connect(world.db) as conn:
        assert conn.execute("SELECT count(*) FROM turns WHERE user_id = 'UDAVE001'").fetchone()[0] >= 1
    world.slack.views.clear()
    await world.sender.interaction(block_action("forget_me", user="UDAVE001", value=DM_HOME, style="danger"))
    await world.slack.wait_for(lambda: world.slack.ephemerals)
    (notice,) = world.slack.ephemerals
    assert notice.channel == DM_HOME and notice.user == "UDAVE001"
    assert notice.text.startswith("Done:")
    # The tab is published again right after the erasure, without waiting for its next opening; the
    # counts stay (they are the budgets), the erased exchanges are gone.
    await world.slack.wait_for(lambda: "UDAVE001" in world.slack.views)
    methods = [c.method for c in world.slack.calls]
    assert methods.index("chat.postEphemeral") < len(methods) - 1 - methods[::-1].index("views.publish")
    assert home_texts()[0] == "Your use" and "today: 1 message;" in home_texts()[1]
    assert world.slack.views["UDAVE001"]["blocks"][-1]["elements"][0]["action_id"] == "forget_me"
    with sqlite3.connect(world.db) as conn:
        assert conn.execute("SELECT count(*) FROM turns WHERE user_id = 'UDAVE001'").fetchone()[0] == 0
        actions = [row[0] for row in conn.execute("SELECT action FROM audit WHERE actor_id = 'UDAVE001'")]
    assert "command.forget" in actions
