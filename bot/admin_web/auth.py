"""Sign-in for the admin page: the token check, signed session cookies, CSRF tokens, attempt limits.

The cookie holds a random session id, an expiry and an HMAC of both under a key derived from the
sign-in token, never the token itself: any replica with the same token accepts it, and nothing stored
(the audit names the session id) lets anyone forge one. CSRF tokens are an HMAC of the session id
(signed in) or of a random pre-session cookie (the sign-in form), checked on every POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final

from limits import parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

SESSION_COOKIE: Final = "gembot_admin"
PRESESSION_COOKIE: Final = "gembot_admin_pre"
SESSION_LIFETIME_S: Final = 12 * 3600
SIGN_IN_LIMITS: Final = "5/minute;30/hour"
"""Failed sign-in attempts per client address (a reverse proxy's clients share its address)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in admin: the session id (the audit's actor) and when the session ends (epoch seconds)."""

    id: str
    expires: int


class SessionSigner:
    """Issues and verifies session cookies and CSRF tokens under a key derived from the sign-in token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")
        self._key = hmac.new(self._token, b"gembot admin_web session v1", hashlib.sha256).digest()
        self._revoked: set[str] = set()

    def token_matches(self, given: str) -> bool:
        """Constant-time comparison of ``given`` with the sign-in token."""
        return hmac.compare_digest(given.encode("utf-8"), self._token)

    def _mac(self, purpose: str, value: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\n{value}".encode(), hashlib.sha256).digest())

    def issue(self, now: float | None = None) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(secrets.token_urlsafe(18), int((now or time.time()) + SESSION_LIFETIME_S))
        body = f"{session.id}.{session.expires}"
        return session, f"{body}.{self._mac('session', body)}"

    def verify(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie value, or None when it is missing, forged, expired or signed out."""
        if not cookie or cookie.count(".") != 2:
            return None
        session_id, expires, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", f"{session_id}.{expires}")):
            return None
        if not expires.isdigit() or int(expires) <= (now or time.time()) or session_id in self._revoked:
            return None
        return Session(session_id, int(expires))

    def revoke(self, session: Session) -> None:
        """Sign a session out (in this process; its cookie is also cleared in the browser)."""
        self._revoked.add(session.id)

    def csrf_token(self, bound_to: str) -> str:
        """The CSRF token of a session id (or a pre-session value)."""
        return self._mac("csrf", bound_to)

    def csrf_ok(self, bound_to: str | None, given: str | None) -> bool:
        """Whether ``given`` is the CSRF token of ``bound_to``."""
        if not bound_to or not given:
            return False
        return hmac.compare_digest(given, self.csrf_token(bound_to))


class SignInLimiter:
    """After :data:`SIGN_IN_LIMITS` failed sign-ins a client address must wait (in this process)."""

    def __init__(self, limits: str = SIGN_IN_LIMITS) -> None:
        self._items = parse_many(limits)
        self._strategy = MovingWindowRateLimiter(MemoryStorage())

    async def may_try(self, client: str) -> bool:
        """Whether the client may try to sign in now (even with the right token)."""
        for item in self._items:
            if not await self._strategy.test(item, "admin_sign_in", client):
                return False
        return True

    async def failed(self, client: str) -> None:
        """Count one failed attempt."""
        for item in self._items:
            await self._strategy.hit(item, "admin_sign_in", client)
