"""The admin page over HTTP, in process: a real App and HttpServer, aiohttp as the client.

The browser tests (tests/e2e/test_admin_web.py) drive the same pages in Chromium; these cover what a
browser cannot show directly: headers, the attempt limit, cookies seen from a public host name.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot.admin_web import mount_admin_web
from bot.admin_web.auth import SESSION_COOKIE
from bot.app import App
from bot.server import HttpServer
from tests.helpers import collect, incoming

TOKEN = "admin-token-0123456789abcdef-0123456789"
ADMIN_WEB = {"admin_web": {"enabled": True, "token": TOKEN}}


class Admin:
    """A started server with the admin page, and a cookie-keeping client."""

    def __init__(self, app: App, server: HttpServer, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.server = server
        self.http = session

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/admin"

    async def csrf(self, path: str) -> str:
        async with self.http.get(self.url + path) as response:
            page = await response.text()
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, page
        return found.group(1)

    async def sign_in(self, token: str = TOKEN, **headers: str) -> aiohttp.ClientResponse:
        """Sign in afresh (from a new sign-in form); the answer to the POST."""
        self.http.cookie_jar.clear()
        csrf = await self.csrf("/login")
        async with self.http.post(
            self.url + "/login", data={"csrf": csrf, "token": token}, allow_redirects=False, headers=headers
        ) as response:
            await response.read()
            return response


@pytest.fixture
async def admin(app_factory: Callable[..., Any]) -> AsyncIterator[Admin]:
    app: App = await app_factory(**ADMIN_WEB)
    server = HttpServer(app.settings.server, app.metrics, app.store.database)
    mount_admin_web(server, app)
    await server.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            yield Admin(app, server, session)
    finally:
        await server.stop()


async def test_pages_carry_a_strict_policy_and_no_secret(admin: Admin) -> None:
    await collect(admin.app, incoming("hello", user="u-http", chat="u-http"))
    response = await admin.sign_in()
    assert response.status == 303
    for path in ("", "/users", "/settings", "/login"):
        async with admin.http.get(admin.url + path) as page:
            assert page.status == 200
            csp = page.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            assert page.headers["X-Frame-Options"] == "DENY"
            body = await page.text()
            assert TOKEN not in body
            assert "<script>" not in body and " style=" not in body
    async with admin.http.get(admin.url + "/static/admin.css") as css:
        assert css.status == 200 and css.content_type == "text/css"
    async with admin.http.get(admin.url + "/static/nothing.js") as missing:
        assert missing.status == 404
    for cookie in admin.http.cookie_jar:
        assert TOKEN not in cookie.value


async def test_without_a_session_pages_send_to_the_sign_in_and_posts_are_refused(admin: Admin) -> None:
    async with admin.http.get(admin.url + "/settings", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/admin/login"
    async with admin.http.post(admin.url + "/purge", data={"csrf": "x"}) as response:
        assert response.status == 403


async def test_failed_sign_ins_are_limited(admin: Admin) -> None:
    assert [(await admin.sign_in()).status for _ in range(6)] == [303] * 6  # successes do not count
    statuses = [(await admin.sign_in("wrong-" + "x" * 30)).status for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    # The right token too waits now.
    assert (await admin.sign_in()).status == 429
    audit = await admin.app.store.statistics.audit_outcomes(
        "admin.sign_in", admin.app.clock.now().replace(year=2000)
    )
    assert audit == {"ok": 6, "refused": 5, "rate_limited": 2}


async def test_the_cookie_is_secure_unless_served_on_a_loopback_name(admin: Admin) -> None:
    local = await admin.sign_in()
    flags = local.cookies[SESSION_COOKIE]
    assert flags["httponly"] and flags["samesite"] == "Strict" and not flags["secure"]
    assert flags["path"] == "/admin"
    public = await admin.sign_in(Host="admin.example.com")
    assert public.cookies[SESSION_COOKIE]["secure"]
    # What X-Forwarded-Proto says is not trusted either way.
    forwarded = await admin.sign_in(**{"X-Forwarded-Proto": "http", "Host": "admin.example.com"})
    assert forwarded.cookies[SESSION_COOKIE]["secure"]


async def test_a_forged_or_expired_cookie_is_no_session(admin: Admin) -> None:
    response = await admin.sign_in()
    value = response.cookies[SESSION_COOKIE].value
    session_id, expires, mac = value.split(".")
    for forged in (f"{session_id}.{int(expires) + 999}.{mac}", f"other.{expires}.{mac}", TOKEN):
        admin.http.cookie_jar.clear()
        admin.http.cookie_jar.update_cookies({SESSION_COOKIE: forged})
        async with admin.http.get(admin.url, allow_redirects=False) as page:
            assert page.status == 303
