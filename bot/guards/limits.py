"""Per-user and per-chat rate limits on the ``limits`` library's async API (memory or Redis storage)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from bot.config import RateLimitSettings
from bot.domain import Incoming


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message may not go on now, and in how many seconds it could."""

    scope: str  # "user" | "chat"
    retry_after: float


def _async_uri(uri: str) -> str:
    # The config speaks of memory:// and redis://; the async variants are an implementation detail.
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimiter:
    """Checks every configured window for the sender and the chat, and spends one hit only when all pass."""

    def __init__(self, settings: RateLimitSettings, *, key_prefix: str = "gembot") -> None:
        storage = storage_from_string(_async_uri(settings.storage))
        if not isinstance(storage, Storage):
            raise TypeError(f"{settings.storage!r} has no async storage in the limits library")
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._per_user: list[RateLimitItem] = (
            parse_many(settings.per_user) if settings.per_user.strip() else []
        )
        self._per_chat: list[RateLimitItem] = (
            parse_many(settings.per_chat) if settings.per_chat.strip() else []
        )
        self._prefix = key_prefix

    async def acquire(self, message: Incoming) -> Refusal | None:
        """Spend one message for the sender and the chat, or say which limit refuses and for how long.

        Every window is tested first, so a refused message spends nothing. The spending ``hit`` is itself
        atomic (a Lua script on Redis) and refuses when another replica filled the window in between, so
        the limit is never exceeded; only a message that loses such a race may have spent on the windows
        hit before it.
        """
        user_key = (self._prefix, message.platform.value, "user", message.user_id)
        chat_key = (self._prefix, *message.conversation_key[:2], "chat")
        checks = [(item, user_key, "user") for item in self._per_user]
        checks += [(item, chat_key, "chat") for item in self._per_chat]
        for item, key, scope in checks:
            if not await self._strategy.test(item, *key):
                return await self._refusal(item, key, scope)
        for item, key, scope in checks:
            if not await self._strategy.hit(item, *key):
                return await self._refusal(item, key, scope)
        return None

    async def _refusal(self, item: RateLimitItem, key: tuple[str, ...], scope: str) -> Refusal:
        stats = await self._strategy.get_window_stats(item, *key)
        return Refusal(scope=scope, retry_after=max(1.0, stats.reset_time - time.time()))

    async def aclose(self) -> None:
        """Close the storage's connections (Redis); the memory storage has none."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            result = pool.disconnect()
            if hasattr(result, "__await__"):
                await result

    async def reset(self) -> None:
        """Forget every counter (tests and operators)."""
        await self._storage.reset()

    async def check_storage(self) -> bool:
        """Whether the storage answers (for /readyz)."""
        return bool(await self._storage.check())
