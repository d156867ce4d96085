"""``gembot run | console | check-config | migrate | purge | stats | copy-db``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import yaml
from sqlalchemy.exc import SQLAlchemyError

from bot import event_loop
from bot.config import ConfigError, Settings, config_warnings, load_settings, masked_dump
from bot.observability.logs import REDACTOR, configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gembot", description="Google Gemini in Slack, Telegram and the terminal."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    specs = {
        "run": "start every enabled adapter, the HTTP server and the background jobs",
        "console": "talk to the bot in the terminal",
        "check-config": "validate the config and print the effective values, secrets masked",
        "migrate": "bring the database schema up to date",
        "purge": "delete now what the retention policy says must go",
        "stats": "print the same statistics as /stats",
        "copy-db": "copy every row to another, empty database (e.g. SQLite to PostgreSQL)",
    }
    for name, help_text in specs.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument(
            "--config", metavar="PATH", help="config file (default: $GEMBOT_CONFIG or ./config.yaml)"
        )
        if name == "copy-db":
            cmd.add_argument(
                "--from",
                dest="source",
                metavar="URL",
                help="database to copy (default: storage.url of the config)",
            )
            cmd.add_argument(
                "--to", dest="target", metavar="URL", required=True, help="empty target database"
            )
        if name == "console":
            cmd.add_argument(
                "--user", metavar="NAME", help="the console user's id (default: your login name)"
            )
            cmd.add_argument(
                "--verbose",
                action="store_true",
                help="log at the configured level on stderr (default: warnings and errors only)",
            )
    return parser


def _load(path: str | None) -> Settings:
    settings = load_settings(path, os.environ)
    return settings


async def _migrate(settings: Settings) -> int:
    from bot.store.migrate import upgrade_to_head

    await upgrade_to_head(settings.storage.url)
    print("database schema is up to date")
    return 0


async def _purge(settings: Settings) -> int:
    from bot.app import App

    async with await App.create(settings) as app:
        removed = await app.purge()
    print("purged: " + ", ".join(f"{table} {count}" for table, count in removed.items()))
    return 0


async def _stats(settings: Settings) -> int:
    from bot import stats
    from bot.app import App
    from bot.i18n import pick_language

    async with await App.create(settings) as app:
        report = await stats.collect(
            app.store.statistics,
            app.store.quota,
            settings.gemini.quota,
            app.clock.now(),
            usage=app.store.usage,
            feedback=app.store.feedback,
        )
    print(stats.render(report, pick_language(os.environ.get("LANG"), settings.conversation.language)))
    return 0


async def _console(settings: Settings, user: str | None) -> int:
    from bot.service import run_console

    return await run_console(settings, user=user)


async def _run(settings: Settings) -> int:
    from bot.service import run_service

    return await run_service(settings)


async def _copy_db(source: str, target: str) -> int:
    from bot.copydb import CopyError, copy_database

    try:
        copied = await copy_database(
            source, target, progress=lambda table, count: print(f"copied {table}: {count} rows", flush=True)
        )
    except CopyError as exc:
        print(f"gembot: copy-db: {exc}", file=sys.stderr)
        return 2
    print(f"done: {sum(copied.values())} rows copied")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gembot`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "copy-db" and args.source:
        return asyncio.run(_copy_db(args.source, args.target))
    try:
        settings = _load(args.config)
    except ConfigError as exc:
        print(f"gembot: config error: {exc}", file=sys.stderr)
        return 2
    level = settings.logging.level
    if args.command == "console" and not args.verbose:
        # The conversation is on the same terminal: only what needs the operator's eyes interrupts it.
        level = max(level, "WARNING", key=logging.getLevelName)
    configure_logging(level, settings.logging.format, settings.secret_values())
    if args.command == "check-config":
        print(yaml.safe_dump(masked_dump(settings), sort_keys=False, allow_unicode=True), end="")
        for warning in config_warnings(settings):
            print(f"gembot: warning: {warning}", file=sys.stderr)
        return 0
    runners = {
        "migrate": lambda: _migrate(settings),
        "purge": lambda: _purge(settings),
        "stats": lambda: _stats(settings),
        "console": lambda: _console(settings, args.user),
        "run": lambda: _run(settings),
        "copy-db": lambda: _copy_db(settings.storage.url, args.target),
    }
    try:
        if args.command == "run":
            return event_loop.run(runners["run"]())
        return asyncio.run(runners[args.command]())
    except KeyboardInterrupt:
        return 0
    except (OSError, SQLAlchemyError) as exc:
        # An unreachable database (server down, wrong host or password) or a port in use: one line, no
        # traceback. The message is redacted like the logs (it can quote a URL).
        detail = REDACTOR.redact(str(exc).splitlines()[0] if str(exc) else "")
        print(f"gembot: {args.command} failed: {exc.__class__.__name__}: {detail}", file=sys.stderr)
        return 1


def entry() -> None:
    """``python -m bot`` and the console script."""
    sys.exit(main())
