"""Grounded, code-executing and thinking answers through ``gembot run`` on Slack (emulators)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.e2e.gembot_process import slack_world, unique
from tests.fakes.gemini import GeminiEmulator
from tests.fakes.grounded_cases import (
    CASES,
    CODE,
    ENGLISH,
    FAILED_URL,
    GEMINI_SETTINGS,
    SEARCH,
    THINKING,
    THOUGHTS,
    Case,
    unmarked,
)
from tests.fakes.slack import EventSender, SlackEmulator, mention_event, new_ts

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

LINK = re.compile(r"<([^|>]+)\|([^>]*)>")


@dataclass
class World:
    gemini: GeminiEmulator
    slack: SlackEmulator
    sender: EventSender


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with slack_world(tmp_path_factory.mktemp("slack-grounding"), gemini=GEMINI_SETTINGS) as made:
        yield World(made.gemini, made.slack, made.sender)


@pytest.fixture(autouse=True)
def _fresh(world: World) -> None:
    world.gemini.reset()
    world.slack.clear()


async def ask(
    world: World, text: str, thread: tuple[str, str] | None = None, *, until: str = ""
) -> tuple[str, str, str]:
    """Mention the bot (in ``thread`` when given, else a new one); (channel, thread ts, answer text).

    ``until``: text the final answer holds (a stopped stream is edited into the final text after).
    """
    channel, ts = thread or (unique("C"), new_ts())
    before = len(world.slack.thread(channel, ts))
    event = mention_event(text, channel=channel, user="U1", **({"thread_ts": ts} if thread else {"ts": ts}))
    await world.sender.event(event)

    def done() -> bool:
        messages = world.slack.thread(channel, ts)
        finished = len(messages) > before and not any(m.streaming or m.text == "…" for m in messages)
        return finished and until in "\n\n".join(m.text for m in messages[before:])

    await world.slack.wait_for(done)
    return channel, ts, "\n\n".join(world.slack.texts(channel, ts)[before:])


def plain(mrkdwn: str) -> str:
    """What a reader sees of ``mrkdwn``: link labels, no emphasis markers."""
    return LINK.sub(r"\2", mrkdwn).replace("*", "").replace("_", "")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_grounded_answer_shows_markers_and_linked_sources(world: World, case: Case) -> None:
    world.gemini.script(case.reply)
    channel, ts, text = await ask(world, "what is new?", until="Searched: ")
    answer, _, listed = text.partition("\n\n*Sources*\n")
    assert plain(answer) == case.shown
    markers = LINK.findall(answer)
    assert markers and all(url in dict(case.sources).values() for url, _ in markers)
    numbered = [f"{n}. <{uri}|{title}>" for n, (title, uri) in enumerate(case.sources, 1)]
    sources, _, searched = listed.partition("\n\nSearched: ")
    assert sources.split("\n") == numbered
    assert [label for _, label in LINK.findall(searched)] == case.searches
    assert all(url.startswith(SEARCH) for url, _ in LINK.findall(searched))
    if case is ENGLISH:
        # What the stream showed is all still there in the final text.
        [message] = world.slack.thread(channel, ts)
        streamed = "".join(message.history[: len(case.reply.chunks or [])])
        assert streamed and unmarked(plain(answer)).startswith(unmarked(streamed))


async def test_code_execution_renders_as_code_and_the_follow_up_carries_the_signed_parts(
    world: World,
) -> None:
    world.gemini.script(CODE)
    channel, ts, text = await ask(world, "sum of 1..100?", until="The sum is")
    # Streamed natively: Slack is sent Markdown, code blocks with their language.
    assert "```python\nprint(sum(range(1, 101)))\n```" in text
    assert "```output\n5050\n```" in text
    assert text.startswith("Let me compute it.") and text.endswith("The sum is **5050**.")
    await ask(world, "and 1..1000?", (channel, ts))
    model_turn = world.gemini.requests[-1].body["contents"][1]
    assert model_turn == {"role": "model", "parts": CODE.parts}


async def test_thoughts_are_shown_in_a_context_block_above_and_never_sent_back(world: World) -> None:
    world.gemini.script(THINKING)
    channel, ts, text = await ask(world, "when does water boil?", until="Thoughts")
    # The text (notifications, clients without blocks) quotes them; the blocks show them as context.
    assert text == f">_Thoughts_\n>{THOUGHTS}\n\nWater boils at 100 °C at sea level."
    answer = world.slack.thread(channel, ts)[-1]
    context, *sections = [b for b in answer.blocks if b["type"] != "context_actions"]
    assert context == {"type": "context", "elements": [{"type": "mrkdwn", "text": f"_Thoughts_\n{THOUGHTS}"}]}
    assert [b["text"]["text"] for b in sections] == ["Water boils at 100 °C at sea level."]
    await ask(world, "and on Everest?", (channel, ts))
    assert THOUGHTS not in str(world.gemini.requests[-1].body["contents"])


async def test_a_link_that_could_not_be_read_is_mentioned(world: World) -> None:
    world.gemini.script(FAILED_URL)
    _, _, text = await ask(
        world, "compare https://broken.example/launch and https://news.example/launch", until="Could not"
    )
    assert text.endswith("\n\n_Could not open broken.example._")
