"""Where gembot's CPU goes under a concurrency burst: py-spy on ``gembot run`` while N users write at once.

    .venv/bin/python -m benchmarks.profile_burst [--n 1000] [--latency 2] [--out DIR]

Prints the burst's figures (makespan, CPU per message, Bot API calls by method) and py-spy's summary
(inclusive share per function, self share per package; see :mod:`benchmarks.profile`). The raw collapsed
stacks stay in ``DIR/raw.txt``. The second round of docs/benchmarks.md ("from the N=1,000 profile") was
measured with this script, one change at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import concurrency
from benchmarks.common import BenchTelegram, start_gembot, start_gemini, stop
from benchmarks.profile import py_spy, summarize


async def profile_burst(n: int, latency: float, out: Path) -> dict[str, Any]:
    """Run one burst of ``n`` messages under py-spy; returns the burst's figures and the summary."""
    gemini, url = await start_gemini(out, latency=latency)
    raw = out / "raw.txt"
    try:
        async with BenchTelegram() as tg:
            proc = await start_gembot(out / "gembot", url, tg.base_url)
            try:
                record = ["record", "--nonblocking", "--gil", "-r", "100", "--format", "raw"]
                spy = await asyncio.create_subprocess_exec(
                    py_spy(),
                    *record,
                    *("-o", str(raw), "--pid", str(proc.pid)),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                await asyncio.sleep(1.0)  # py-spy attached
                burst = await concurrency.burst(tg, proc, n, latency, 3_000_000, within=60 + n / 5)
                spy.send_signal(signal.SIGINT)
                await spy.wait()
            finally:
                await stop(proc)
    finally:
        await stop(gemini)
    return {"burst": burst, "profile": summarize(raw, top=40)}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_burst", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--n", type=int, default=1000, help="users writing at once")
    parser.add_argument("--latency", type=float, default=2.0, help="emulated Gemini latency, seconds")
    parser.add_argument("--out", type=Path, help="keep py-spy's samples and the logs here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gembot-burst-"))
    out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(profile_burst(args.n, args.latency, out))
    burst = result["burst"]
    keys = ("n", "answered", "makespan_s", "cpu_ms_per_message", "calls")
    print(json.dumps({k: burst[k] for k in keys}, default=str))
    for section, rows in result["profile"].items():
        print(section)
        for row in rows if isinstance(rows, list) else [rows]:
            print("   ", row)
    print(f"samples and logs: {out}")


if __name__ == "__main__":
    main()
