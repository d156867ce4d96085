"""A/B of ``gembot run`` under several environments: CPU per answered message in the throughput loop.

    .venv/bin/python -m benchmarks.ab --rounds 4 all: asyncio:GEMBOT_EVENT_LOOP=asyncio

Each argument is ``NAME:VAR=VALUE,VAR=VALUE`` (nothing after the colon: the environment as it is). The
variants run in alternation, ``--rounds`` times each, against one Gemini emulator (latency 0), so a busy
moment of a shared machine hits them alike; the medians are printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from benchmarks import common, throughput
from benchmarks.common import start_gemini, stop


def variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    env = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
    return name, env


async def run(variants: list[tuple[str, dict[str, str]]], rounds: int, seconds: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="gembot-ab-"))
    base_env = common._child_env
    gemini, url = await start_gemini(work, latency=0.0)
    cpu: dict[str, list[float]] = {name: [] for name, _ in variants}
    try:
        for r in range(rounds):
            for name, env in variants:
                common._child_env = lambda env=env: {**base_env(), **env}  # type: ignore[misc]
                out = await throughput.run_gembot(work / f"{name}-{r}", url, 100, 2.0, seconds)
                cpu[name].append(out["cpu_ms_per_message"])
                print(
                    f"{name}: {out['cpu_ms_per_message']:.2f} ms CPU / message, "
                    f"{out['messages_per_s']:.0f} messages/s, "
                    f"{out['calls_per_answer']['total']:.2f} calls / answer",
                    flush=True,
                )
    finally:
        common._child_env = base_env
        await stop(gemini)
    for name, values in cpu.items():
        rounded = ", ".join(f"{v:.2f}" for v in sorted(values))
        print(f"{name}: median {statistics.median(values):.2f} ms CPU / message ({rounded})")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", type=variant, help="NAME:VAR=VALUE,... (or NAME:)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0, help="the measured window of each run")
    args = parser.parse_args()
    asyncio.run(run(args.variants, args.rounds, args.seconds))


if __name__ == "__main__":
    main()
