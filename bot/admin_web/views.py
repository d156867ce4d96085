"""The admin page's routes: sign-in, overview, users (block/unblock), settings and purge.

Every page is server-rendered HTML (Jinja2, autoescaped) with inline SVG charts; the only script is a
static file that reloads the overview. Pages show figures and ids, never what people wrote: nothing
here reads the ``turns`` table's text.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from yarl import URL

from bot import stats
from bot.admin_web.auth import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    SESSION_LIFETIME_S,
    Session,
    SessionSigner,
    SignInLimiter,
)
from bot.admin_web.charts import latency_chart
from bot.config import is_loopback_host, masked_dump
from bot.observability.logs import get_logger
from bot.server import HttpServer
from bot.store import AuditRecord

if TYPE_CHECKING:
    from bot.app import App

log = get_logger(__name__)

AUDIT_PLATFORM: Final = "admin_web"
TOP_USERS: Final = 20
USERS_WINDOW: Final = timedelta(days=30)
REFRESH_S: Final = 30
# No inline script or style anywhere: every page works under this policy (and without JavaScript).
CSP: Final = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATIC_TYPES: Final = {".css": "text/css", ".js": "text/javascript"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SignedIn = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def _flatten(node: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A settings section as (dotted key, shown value) rows."""
    if isinstance(node, dict):
        return [row for key, value in node.items() for row in _flatten(value, f"{prefix}{key}.")]
    if isinstance(node, list):
        shown = ", ".join(str(v) for v in node) or "[]"
    elif node is None:
        shown = "—"
    elif isinstance(node, bool):
        shown = "true" if node else "false"
    else:
        shown = str(node)
    return [(prefix.rstrip("."), shown)]


def compact(number: int) -> str:
    """A count short enough for a tile: 987, 12.3k, 4.56M."""
    for threshold, unit, suffix in ((10**9, 10**9, "G"), (10**6, 10**6, "M"), (10**4, 10**3, "k")):
        if number >= threshold:
            return f"{number / unit:.3g}{suffix}"
    return str(number)


def _redirect(location: str) -> web.Response:
    """303 See Other: after a POST, the browser loads ``location`` with a GET."""
    return web.Response(status=303, headers={"Location": location})


def _purge_summary(removed: Mapping[str, int]) -> str:
    return ", ".join(f"{table} {count}" for table, count in removed.items())


class AdminWeb:
    """The admin page of one gembot process, mounted on its HTTP server under ``admin_web.path``."""

    def __init__(self, app: App, server: HttpServer) -> None:
        settings = app.settings.admin_web
        if settings.token is None:
            raise ValueError("admin_web.token is required")  # the config validation makes sure of it
        self._app = app
        self._server = server
        self._base = settings.path
        self._signer = SessionSigner(settings.token.get_secret_value())
        self._limiter = SignInLimiter()
        self._env = Environment(
            loader=PackageLoader("bot.admin_web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["ms"] = stats.format_ms
        self._env.filters["compact"] = compact
        self._static: dict[str, tuple[bytes, str]] = {}
        for entry in resources.files("bot.admin_web").joinpath("static").iterdir():
            suffix = entry.name[entry.name.rfind(".") :]
            if suffix in _STATIC_TYPES:
                self._static[entry.name] = (entry.read_bytes(), _STATIC_TYPES[suffix])

    def mount(self) -> None:
        """Add the routes to the server (before it starts)."""
        base, add = self._base, self._server.add_route
        add("GET", base, self._signed_in(self._overview))
        add("GET", f"{base}/login", self._guarded(self._login_form))
        add("POST", f"{base}/login", self._guarded(self._login))
        add("POST", f"{base}/logout", self._signed_in(self._logout))
        add("GET", f"{base}/users", self._signed_in(self._users))
        add("POST", f"{base}/users/block", self._signed_in(self._block))
        add("POST", f"{base}/users/unblock", self._signed_in(self._unblock))
        add("GET", f"{base}/settings", self._signed_in(self._settings))
        add("POST", f"{base}/purge", self._signed_in(self._purge))
        add("GET", f"{base}/static/{{name}}", self._guarded(self._static_file))

    # -- plumbing ------------------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        """Add the security headers to every answer of ``handler``."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                for name, value in _HEADERS.items():
                    exc.headers.setdefault(name, value)
                raise
            for name, value in _HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return guarded

    def _signed_in(self, handler: SignedIn) -> Handler:
        """Only for a signed-in session (else the sign-in page); a POST also needs its CSRF token."""

        async def signed_in(request: web.Request) -> web.StreamResponse:
            session = self._signer.verify(request.cookies.get(SESSION_COOKIE))
            if session is None:
                if request.method == "POST":
                    raise web.HTTPForbidden(text="not signed in\n")
                return _redirect(f"{self._base}/login")
            if request.method == "POST":
                form = await request.post()
                given = form.get("csrf")
                if not self._signer.csrf_ok(session.id, given if isinstance(given, str) else None):
                    log.warning("admin_web.csrf_refused", session=session.id, path=request.path)
                    raise web.HTTPForbidden(text="invalid CSRF token\n")
            return await handler(request, session)

        return self._guarded(signed_in)

    def _secure_cookies(self, request: web.Request) -> bool:
        # No X-Forwarded-Proto is trusted (gembot has no trusted-proxy setting): cookies are Secure
        # unless the page is reached over plain http on a loopback name, so behind a TLS-terminating
        # proxy (a public host name) they are Secure whatever the proxy says.
        return request.secure or not is_loopback_host(request.url.host or "")

    def _set_cookie(self, response: web.StreamResponse, request: web.Request, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            path=self._base,
            max_age=SESSION_LIFETIME_S,
            httponly=True,
            samesite="Strict",
            secure=self._secure_cookies(request),
        )

    def _render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        page = self._env.get_template(template).render(base=self._base, **context)
        return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")

    def _page(self, template: str, session: Session, **context: Any) -> web.Response:
        return self._render(template, csrf=self._signer.csrf_token(session.id), signed_in=True, **context)

    async def _audit(self, session_id: str, action: str, outcome: str, **params: object) -> AuditRecord:
        record = self._record(session_id, action, outcome, **params)
        await self._app.store.records.record_audit([record])
        return record

    def _record(self, session_id: str, action: str, outcome: str, **params: object) -> AuditRecord:
        log.info(f"admin_web.{action}", session=session_id, outcome=outcome, **params)
        return AuditRecord(
            at=self._app.clock.now(),
            platform=AUDIT_PLATFORM,
            actor_id=f"session:{session_id}",
            action=f"admin.{action}",
            params=params,
            outcome=outcome,
        )

    async def _static_file(self, request: web.Request) -> web.StreamResponse:
        found = self._static.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text="not found\n")
        body, content_type = found
        response = web.Response(body=body, content_type=content_type, charset="utf-8")
        response.headers["Cache-Control"] = "max-age=3600"
        return response

    # -- sign-in -------------------------------------------------------------------------------------

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        if self._signer.verify(request.cookies.get(SESSION_COOKIE)) is not None:
            return _redirect(self._base)
        return self._login_page(request, None, 200)

    def _login_page(self, request: web.Request, error: str | None, status: int) -> web.Response:
        pre = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(18)
        response = self._render(
            "login.html", status, csrf=self._signer.csrf_token(pre), signed_in=False, error=error
        )
        self._set_cookie(response, request, PRESESSION_COOKIE, pre)
        return response

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        csrf, token = form.get("csrf"), form.get("token")
        if not self._signer.csrf_ok(
            request.cookies.get(PRESESSION_COOKIE), csrf if isinstance(csrf, str) else None
        ):
            raise web.HTTPForbidden(text="invalid CSRF token: reload the sign-in page\n")
        client = request.remote or "unknown"
        if not await self._limiter.may_try(client):
            await self._audit("-", "sign_in", "rate_limited")
            return self._login_page(request, "Too many attempts. Wait a minute and try again.", 429)
        if not isinstance(token, str) or not self._signer.token_matches(token):
            await self._limiter.failed(client)
            await self._audit("-", "sign_in", "refused")
            return self._login_page(request, "That token is not right.", 401)
        session, cookie = self._signer.issue()
        await self._audit(session.id, "sign_in", "ok")
        response = _redirect(self._base)
        self._set_cookie(response, request, SESSION_COOKIE, cookie)
        response.del_cookie(PRESESSION_COOKIE, path=self._base)
        return response

    async def _logout(self, _request: web.Request, session: Session) -> web.StreamResponse:
        self._signer.revoke(session)
        await self._audit(session.id, "sign_out", "ok")
        response = _redirect(f"{self._base}/login")
        response.del_cookie(SESSION_COOKIE, path=self._base)
        return response

    # -- pages ---------------------------------------------------------------------------------------

    async def _overview(self, _request: web.Request, session: Session) -> web.StreamResponse:
        app = self._app
        now = app.clock.now()
        report = await stats.collect(
            app.store.statistics,
            app.store.quota,
            app.settings.gemini.quota,
            now,
            feedback=app.store.feedback,
        )
        series = await stats.latency_series(app.store.statistics, now)
        charts = {name: latency_chart(name, buckets) for name, buckets in series.items()}
        return self._page(
            "overview.html",
            session,
            page="overview",
            report=report,
            charts=charts,
            now=now,
            refresh_s=REFRESH_S,
        )

    async def _users(self, request: web.Request, session: Session) -> web.StreamResponse:
        app = self._app
        assert app.blocklist is not None
        top = await app.store.statistics.top_users(app.clock.now() - USERS_WINDOW, TOP_USERS)
        blocked = await app.blocklist.entries()
        return self._page(
            "users.html",
            session,
            page="users",
            top=top,
            blocked=sorted(blocked.items(), key=lambda item: item[1], reverse=True),
            blocked_keys=set(blocked),
            done=request.query.get("done", ""),
        )

    async def _block(self, request: web.Request, session: Session) -> web.StreamResponse:
        return await self._change_block(request, session, block=True)

    async def _unblock(self, request: web.Request, session: Session) -> web.StreamResponse:
        return await self._change_block(request, session, block=False)

    async def _change_block(
        self, request: web.Request, session: Session, *, block: bool
    ) -> web.StreamResponse:
        form = await request.post()
        platform, user_id = str(form.get("platform", "")).strip(), str(form.get("user_id", "")).strip()
        if platform not in ("telegram", "slack") or not user_id or len(user_id) > 255:
            raise web.HTTPBadRequest(text="a platform (telegram or slack) and a user id are needed\n")
        blocklist = self._app.blocklist
        assert blocklist is not None
        action = "block_user" if block else "unblock_user"
        if block:
            record = self._record(session.id, action, "blocked", platform=platform, user_id=user_id)
            changed = await blocklist.block(platform, user_id, record)
        else:
            record = self._record(session.id, action, "unblocked", platform=platform, user_id=user_id)
            changed = await blocklist.unblock(platform, user_id, record)
        done = f"{'Blocked' if block else 'Unblocked'} {platform} user {user_id}"
        if not changed:
            done += " (no change)"
        return _redirect(str(URL(f"{self._base}/users").with_query(done=done)))

    async def _settings(self, request: web.Request, session: Session) -> web.StreamResponse:
        app = self._app
        settings = app.settings
        modes = {"telegram": settings.telegram.mode, "slack": settings.slack.mode}
        checks = [(state, modes.get(state.name, "")) for state in await self._server.check_states()]
        sections = {name: _flatten(values) for name, values in masked_dump(settings).items()}
        return self._page(
            "settings.html",
            session,
            page="settings",
            checks=checks,
            sections=sections,
            purged=request.query.get("purged", ""),
        )

    async def _purge(self, _request: web.Request, session: Session) -> web.StreamResponse:
        removed = await self._app.purge()
        await self._audit(session.id, "purge", "ok", **removed)
        return _redirect(str(URL(f"{self._base}/settings").with_query(purged=_purge_summary(removed))))
