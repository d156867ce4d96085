"""UtcDateTime keeps instants exact and returns them as aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Dialect
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

from bot.store.models import UtcDateTime

offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)


def _with_offset(naive: datetime, offset: timedelta) -> datetime:
    return naive.replace(tzinfo=timezone(offset))


aware = st.builds(
    _with_offset,
    st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(9998, 12, 30)),
    offsets,
)


@given(aware)
def test_round_trip_on_sqlite_and_postgresql(value: datetime) -> None:
    column = UtcDateTime()
    dialects: tuple[Dialect, ...] = (SQLiteDialect(), PGDialect())  # type: ignore[no-untyped-call]
    for dialect in dialects:
        stored = column.process_bind_param(value, dialect)
        assert stored is not None
        if dialect.name == "sqlite":
            assert stored.tzinfo is None  # naive UTC: SQLite's text order is then chronological
        back = column.process_result_value(stored, dialect)
        assert back == value
        assert back is not None and back.tzinfo is UTC


def test_naive_values_are_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        UtcDateTime().process_bind_param(datetime(2026, 1, 1), SQLiteDialect())


def test_none_passes_through() -> None:
    assert UtcDateTime().process_bind_param(None, SQLiteDialect()) is None
    assert UtcDateTime().process_result_value(None, SQLiteDialect()) is None
