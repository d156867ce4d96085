"""``gembot copy-db``: copy every row of gembot's database to another one (SQLite -> PostgreSQL).

Both schemas are brought to Alembic's head first; the target must hold no gembot rows yet. Tables are
copied parents first, in batches, ids included (so turns still point at their conversations); on
PostgreSQL the id sequences are then moved past the copied ids. The target is written in one
transaction: a failed copy leaves it empty. Stop every gembot process writing to the source first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sqlalchemy import Table, func, select
from sqlalchemy.exc import SQLAlchemyError

from bot.store import create_engine, read_only
from bot.store.db import sqlite_path
from bot.store.migrate import upgrade_to_head
from bot.store.models import Base

__all__ = ["CopyError", "copy_database"]

_BATCH: Final = 1000


class CopyError(RuntimeError):
    """The copy cannot be done (e.g. the target already holds data)."""


def _tables() -> list[Table]:
    return list(Base.metadata.sorted_tables)  # parents before children


async def copy_database(
    source: str, target: str, *, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copy every gembot table from ``source`` to ``target``; returns the rows copied per table."""
    if source == target:
        raise CopyError("source and target are the same database")
    source_file = sqlite_path(source)
    if source_file is not None and not source_file.is_file():
        # Migrating it would create an empty file and "copy" nothing: a mistyped path is an error.
        raise CopyError(f"the source database file {source_file} does not exist")
    for url, role in ((source, "source"), (target, "target")):
        try:
            await upgrade_to_head(url)
        except (OSError, SQLAlchemyError) as exc:
            raise CopyError(f"cannot open the {role} database: {exc.__class__.__name__}") from exc
    src, dst = create_engine(source), create_engine(target)
    copied: dict[str, int] = {}
    try:
        async with read_only(src).connect() as reader, dst.begin() as writer:
            for table in _tables():
                if int((await writer.execute(select(func.count()).select_from(table))).scalar_one()):
                    raise CopyError(f"the target already has rows in {table.name}; use an empty database")
            for table in _tables():
                order = list(table.primary_key.columns)
                count = 0
                result = await reader.stream(select(table).order_by(*order))
                async for rows in result.mappings().partitions(_BATCH):
                    await writer.execute(table.insert(), [dict(row) for row in rows])
                    count += len(rows)
                copied[table.name] = count
                if progress is not None:
                    progress(table.name, count)
            if dst.dialect.name == "postgresql":
                for table in _tables():
                    if "id" in table.c and table.c.id.autoincrement is True:
                        next_id = select(func.coalesce(func.max(table.c.id), 0) + 1).scalar_subquery()
                        sequence = func.pg_get_serial_sequence(table.name, "id")
                        await writer.execute(select(func.setval(sequence, next_id, False)))
    finally:
        await src.dispose()
        await dst.dispose()
    return copied
