"""Fuzz: Slack Events API payloads and slash-command forms through the adapter's normalization.

Promises: no payload crashes the adapter (a crash would lose the message after Slack got its 200: silence);
every message meant for the bot becomes one ``Incoming`` whose event id depends only on channel and ts, so
every delivery of one message (Slack's retries, ``app_mention`` and ``message`` twins) is answered once.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.slack.normalize import Job, message_event_id, normalize_command, normalize_event
from tests.fakes.slack import BOT_ID, BOT_USER_ID
from tests.reliability.conftest import fuzz_settings

json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
junk = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def maybe_wrong(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, strategy, strategy, junk)


channels = st.sampled_from(["D0001", "C0001", "G0001", "", "Dx"]) | st.text(max_size=6)
ts_values = st.builds(lambda a, b: f"{a}.{b:06d}", st.integers(0, 2**31), st.integers(0, 999_999))
mention = f"<@{BOT_USER_ID}>"
texts = st.one_of(
    st.text(max_size=40),
    st.builds(lambda t: f"{mention} {t}", st.text(max_size=20)),
    st.sampled_from([f"{mention} reset", f"{mention} help!", f"<@{BOT_USER_ID}|gembot> stats", "reset"]),
)
file_objects = st.fixed_dictionaries(
    {"id": maybe_wrong(st.text(min_size=1, max_size=6))},
    optional={
        "name": maybe_wrong(st.text(max_size=12)),
        "mimetype": maybe_wrong(st.sampled_from(["application/pdf", "image/png", "text/plain", ""])),
        "mode": st.sampled_from(["hosted", "snippet", "external", "tombstone", "file_access"]),
        "size": maybe_wrong(st.integers(-1, 10**10)),
        "url_private_download": maybe_wrong(st.just("https://files.slack.com/files-pri/T-F/download/x")),
        "file_access": st.sampled_from(["visible", "check_file_info"]),
    },
)
events = st.fixed_dictionaries(
    {
        "type": maybe_wrong(st.sampled_from(["message", "app_mention", "reaction_added"])),
        "channel": maybe_wrong(channels),
        "ts": maybe_wrong(ts_values),
    },
    optional={
        "user": maybe_wrong(st.sampled_from(["U1", "W2", BOT_USER_ID, ""])),
        "text": maybe_wrong(texts),
        "thread_ts": maybe_wrong(ts_values),
        "channel_type": st.sampled_from(["im", "channel", "group", "mpim"]),
        "subtype": st.sampled_from(["file_share", "thread_broadcast", "message_changed", "bot_message"]),
        "bot_id": st.sampled_from(["B1", BOT_ID, ""]),
        "files": maybe_wrong(st.lists(maybe_wrong(file_objects), max_size=3)),
        "user_profile": maybe_wrong(
            st.fixed_dictionaries({}, optional={"display_name": st.text(max_size=8)})
        ),
        "team": st.text(max_size=6),
    },
)
bodies = st.fixed_dictionaries(
    {"event": maybe_wrong(events)}, optional={"team_id": maybe_wrong(st.text(max_size=6)), "type": st.text()}
)


def check_job(job: Job | None, event: dict[str, Any]) -> None:
    if job is None:
        return
    incoming = job.incoming
    assert incoming.event_id == message_event_id(event["channel"], event["ts"])
    assert incoming.chat_key == job.channel == event["channel"]
    assert incoming.user_id == event["user"] and incoming.user_id != BOT_USER_ID
    assert all(f.url.startswith("https://") or not f.url for f in job.files)
    assert not (job.files and incoming.command is not None)
    if incoming.is_private:
        assert incoming.addressed_to_bot
    else:
        assert job.thread_ts == incoming.thread_key  # a channel answer always goes to a thread


@fuzz_settings(3)
@given(bodies, st.sampled_from([BOT_USER_ID, ""]))
def test_any_event_normalizes_without_crashing(body: dict[str, Any], bot_user_id: str) -> None:
    job = normalize_event(body, bot_user_id, BOT_ID if bot_user_id else "")
    if job is not None:
        check_job(job, body["event"])


@fuzz_settings(2)
@given(
    st.sampled_from(["C0001", "D0002"]),
    st.sampled_from(["U1", "W2"]),
    ts_values,
    st.text(max_size=30),
    st.none() | ts_values,
)
def test_every_delivery_of_one_message_has_one_event_id(
    channel: str, user: str, ts: str, text: str, thread_ts: str | None
) -> None:
    """app_mention and message twins, and any retry, share the inbox key: one answer for all of them."""
    base = {"channel": channel, "user": user, "ts": ts, "text": f"{mention} {text}"}
    if thread_ts:
        base["thread_ts"] = thread_ts
    jobs = [
        normalize_event({"event": {**base, "type": kind}}, BOT_USER_ID, BOT_ID)
        for kind in ("app_mention", "message", "app_mention")
    ]
    found = [j for j in jobs if j is not None]
    assert found, "a message that mentions the bot is always for the bot"
    assert {j.incoming.event_id for j in found} == {message_event_id(channel, ts)}
    assert {j.key for j in found} == {found[0].key}


forms = st.fixed_dictionaries(
    {},
    optional={
        "channel_id": maybe_wrong(channels),
        "user_id": maybe_wrong(st.sampled_from(["U1", ""])),
        "text": maybe_wrong(st.text(max_size=30)),
        "trigger_id": maybe_wrong(st.text(max_size=10)),
        "response_url": maybe_wrong(st.text(max_size=10)),
        "channel_name": st.sampled_from(["directmessage", "general"]),
        "user_name": maybe_wrong(st.text(max_size=8)),
    },
)


@fuzz_settings(2)
@given(forms)
def test_any_slash_command_normalizes_without_crashing(form: dict[str, Any]) -> None:
    job = normalize_command(form)
    if job is not None:
        assert job.incoming.command is not None and job.incoming.command == job.incoming.command.lower()
        assert job.incoming.event_id.startswith("command:")
