"""The floor: a bare python-telegram-bot echo bot, polling, with concurrent updates.

It is built like gembot's Application (same base URL form, connection pool, concurrency and allowed
updates) and does nothing but answer every text message with one sendMessage, so its throughput is what
python-telegram-bot itself costs on this machine. Prints ``ready`` once polling, stops on SIGTERM.

Run: ``.venv/bin/python -m benchmarks.echo_bot --base-url http://127.0.0.1:PORT``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from tests.fakes.telegram import BOT_TOKEN


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is not None and message.text:
        await context.bot.send_message(message.chat_id, f"echo: {message.text}")


def build(base_url: str, token: str) -> Application:  # type: ignore[type-arg]
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{base_url.rstrip('/')}/bot")
        .concurrent_updates(4096)
        .connection_pool_size(512)
        .pool_timeout(30.0)
        .get_updates_read_timeout(30.0)
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo))
    return application


async def main(base_url: str, token: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    application = build(base_url, token)
    async with application:
        assert application.updater is not None
        await application.start()
        await application.updater.start_polling(allowed_updates=["message"])
        print("ready", flush=True)
        await stop.wait()
        await application.updater.stop()
        await application.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the Bot API emulator's root URL")
    parser.add_argument("--token", default=BOT_TOKEN)
    args = parser.parse_args()
    asyncio.run(main(args.base_url, args.token))
