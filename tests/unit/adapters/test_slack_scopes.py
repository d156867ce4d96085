"""The Slack app manifests ask for exactly the scopes the adapter's code needs: the Web API methods it
calls and the events it listens to are read out of its source, their scopes looked up in
adapters/slack/scopes.py, and the union compared with each manifest."""

from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.normalize import SUMMARY_SHORTCUT
from adapters.slack.scopes import EVENT_SCOPES, METHOD_SCOPES, required_scopes
from bot.config import SlackSettings

ROOT = Path(__file__).resolve().parents[3]
SLACK_CODE = ROOT / "adapters" / "slack"
MANIFESTS = {"slack-manifest.yaml": True, "slack-manifest-http.yaml": False}  # name -> socket mode
# Bolt's assistant middleware: the listener it is given -> the event it subscribes to.
_ASSISTANT_EVENTS = {
    "thread_started": "assistant_thread_started",
    "thread_context_changed": "assistant_thread_context_changed",
}
# Bolt's "message" listener receives these subscriptions.
_MESSAGE_EVENTS = ("message.channels", "message.groups", "message.im", "message.mpim")


@cache
def web_api_method(attribute: str) -> str | None:
    """The Web API method an AsyncWebClient method calls ("chat_postMessage" -> "chat.postMessage")."""
    function = getattr(AsyncWebClient, attribute, None)
    if function is None or attribute.startswith("_") or not callable(function):
        return None
    found = re.search(r'api_call\(\s*"([a-zA-Z.]+)"', inspect.getsource(function))
    return found.group(1) if found else None


def _calls() -> list[ast.Call]:
    calls = []
    for path in sorted(SLACK_CODE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls += [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    return calls


def _first_string(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def called_methods() -> set[str]:
    """Every Web API method the adapter's code calls, by client method or by ``api_call("...")``."""
    methods = set()
    for call in _calls():
        assert isinstance(call.func, ast.Attribute)
        name = _first_string(call) if call.func.attr == "api_call" else web_api_method(call.func.attr)
        if name is not None:
            methods.add(name)
    return methods


def subscribed_events() -> set[str]:
    """Every event the adapter registers a listener for."""
    events = set()
    for call in _calls():
        assert isinstance(call.func, ast.Attribute)
        if call.func.attr == "event" and (name := _first_string(call)) is not None:
            events |= set(_MESSAGE_EVENTS) if name == "message" else {name}
        elif call.func.attr in _ASSISTANT_EVENTS:
            events.add(_ASSISTANT_EVENTS[call.func.attr])
    return events


def manifest(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "deploy" / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_scan_finds_the_calls_and_every_called_method_has_its_scopes() -> None:
    methods = called_methods()
    # The scan sees calls through each client and helper (not a list to maintain: a check that it works).
    assert {
        "chat.postMessage",
        "conversations.history",
        "views.publish",
        "assistant.threads.setTitle",
    } <= methods
    assert methods == set(METHOD_SCOPES), "adapters/slack/scopes.py must list exactly the methods called"
    assert subscribed_events() == set(EVENT_SCOPES)


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_asks_for_exactly_the_scopes_the_code_needs(name: str) -> None:
    app = manifest(name)
    settings = app["settings"]
    events = settings["event_subscriptions"]["bot_events"]
    assert len(events) == len(set(events)) and set(events) == subscribed_events()
    scopes = app["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) == required_scopes(called_methods(), events, commands=True)
    assert settings["socket_mode_enabled"] is MANIFESTS[name]


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_enables_the_surfaces_the_code_serves(name: str) -> None:
    app = manifest(name)
    features, settings = app["features"], app["settings"]
    assert [c["command"] for c in features["slash_commands"]] == [SlackSettings().slash_command]
    assert [(s["type"], s["callback_id"]) for s in features["shortcuts"]] == [("message", SUMMARY_SHORTCUT)]
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["assistant_view"]["assistant_description"]
    assert settings["interactivity"]["is_enabled"] is True
    if not MANIFESTS[name]:
        for url in (
            settings["event_subscriptions"]["request_url"],
            settings["interactivity"]["request_url"],
            *(c["url"] for c in features["slash_commands"]),
        ):
            assert url.endswith("/slack/events")
