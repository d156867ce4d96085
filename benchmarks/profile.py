"""Where gembot's CPU goes: py-spy samples of ``gembot run`` under the throughput load, summarized.

py-spy runs ``--nonblocking --gil`` (the process is not paused; only the thread holding the GIL is
sampled, so idle waits and GIL waits are not counted) in its own process and writes collapsed stacks
(``--format raw``); the summary gives each function's share of the samples, inclusive (the function and
what it calls) and by the package whose code was on top of the stack (self time). SQLite's own C code runs
in aiosqlite's worker threads without the GIL, so it is measured apart: the CPU time of the event-loop
thread and of all other threads, from /proc/PID/task/*/stat.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import throughput
from benchmarks.common import BenchTelegram, cpu_seconds_of, start_gembot, stop

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the main (event loop) thread and of all other threads together."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            seconds = cpu_seconds_of(task / "stat")
            if task.name == str(pid):
                main += seconds
            else:
                other += seconds
    return main, other


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/", 2)
        return "stdlib " + (module[1].removesuffix(".py") if len(module) > 1 else "?")
    parts = Path(path).parts
    for top in ("bot", "adapters"):
        if top in parts:
            i = parts.index(top)
            return "/".join(parts[i : i + 2]).removesuffix(".py")
    return path


def _short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if "/lib/python3" in path:
        return "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    for top in ("/bot/", "/adapters/"):
        if top in path:
            return top.strip("/") + "/" + path.split(top, 1)[1]
    return path


def summarize(raw: Path, top: int = 25) -> dict[str, Any]:
    """Inclusive share per function, self share per package, from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        seen: set[str] = set()
        leaf = ""
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            if match is None:
                continue
            key = f"{match['name']} ({_short(match['file'])})"
            leaf = match["file"]
            if key not in seen:
                seen.add(key)
                inclusive[key] += count
        by_package[_package(leaf) if leaf else "?"] += count
    if not total:
        return {"samples": 0, "inclusive": [], "self_by_package": []}
    return {
        "samples": total,
        "inclusive": [(k, v / total) for k, v in inclusive.most_common(top * 3)],
        "self_by_package": [(k, v / total) for k, v in by_package.most_common(top)],
    }


async def run(workdir: Path, gemini_url: str, users: int, seconds: float) -> dict[str, Any]:
    """Profile gembot during a throughput window (its figures are not reported: py-spy costs CPU too)."""
    raw = workdir / "gembot-profile.txt"
    async with BenchTelegram() as tg:
        proc = await start_gembot(workdir / "gembot-profile", gemini_url, tg.base_url)
        spies: list[asyncio.subprocess.Process] = []
        try:
            loop = asyncio.create_task(throughput.closed_loop(tg, proc, users, 2.0, seconds, 8_000_000))
            await asyncio.sleep(2.0)
            spies.append(
                await asyncio.create_subprocess_exec(
                    py_spy(),
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--duration",
                    str(max(1, int(seconds) - 1)),
                    "--rate",
                    "100",
                    "--nonblocking",
                    "--gil",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
            before = thread_cpu(proc.pid)
            result = await loop
            after = thread_cpu(proc.pid)
            for spy in spies:
                await asyncio.wait_for(spy.wait(), seconds + 30)
        finally:
            for spy in spies:
                if spy.returncode is None:
                    spy.kill()
                    await spy.wait()
            await stop(proc)
    summary = summarize(raw) if raw.exists() else {"samples": 0, "inclusive": [], "self_by_package": []}
    main = after[0] - before[0]
    others = after[1] - before[1]
    summary["cpu_main_s"] = main
    summary["cpu_other_threads_s"] = others
    summary["raw"] = str(raw)
    summary["messages_per_s_while_profiled"] = result["messages_per_s"]
    return summary
