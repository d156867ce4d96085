"""The event loop ``gembot run`` runs on: uvloop where it is installed, unless ``GEMBOT_EVENT_LOOP=asyncio``.

uvloop's loop (libuv, written in Cython) schedules callbacks and moves socket data with less Python per
step than asyncio's own, which matters for a process whose every message is a handful of HTTP calls and
thread hand-offs (docs/benchmarks.md measures it). ``GEMBOT_EVENT_LOOP=asyncio`` is the switch back.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "GEMBOT_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when it is installed and not switched off; None for asyncio's own."""
    if os.environ.get(ENV, "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # not on this platform (uvloop has no Windows build)
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the chosen event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
