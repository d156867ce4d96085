"""Telegram: python-telegram-bot v22 on gembot's event loop (polling or webhook).

One package per platform: ``adapter`` (lifecycle, inbound updates), ``normalize`` (Update -> Incoming),
``answer`` (streaming and final rendering), ``outbox`` (flood control).
"""

from adapters.telegram.adapter import TelegramAdapter, build

__all__ = ["TelegramAdapter", "build"]
