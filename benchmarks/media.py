"""Media: peak memory while answering a 20 MB file, and a burst of voice notes against a burst of text.

The engine runs in a process of its own (the worker: the app on a SQLite file, as ``gembot run`` builds
it) against the Gemini emulator in this process, so the worker's /proc figures are its own.

* **Peak RSS for a 20 MB file**: after warm-up (text, a voice note, a file through the Files API), the
  worker's RSS is read (idle), its peak RSS reset (``/proc/self/clear_refs``), a 20 MB PDF is read from
  disk as an adapter's download would hold it and answered (uploaded through the Files API, then the
  request naming it); the peak above idle is compared with 3x the file's size.
* **Burst**: 50 users each send one text message at once, then 50 users each one voice note (7.8 KB
  OGG/Opus, inline); with the emulator answering after ``LATENCY`` seconds, the makespans and how far
  apart the 50 requests reached Gemini show whether voice notes are answered with the same concurrency.

    .venv/bin/python -m benchmarks.media
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.common import API_KEY, ROOT

MEDIA = ROOT / "tests" / "media"
LATENCY = 1.0
BURST = 50
FILE_MB = 20


def _status_kb() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: "5" to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def big_pdf(path: Path, size: int) -> Path:
    """A PDF of exactly ``size`` bytes: the 30-page report with a comment filling the rest."""
    head = (MEDIA / "report.pdf").read_bytes()
    path.write_bytes(head + b"\n%" + b"x" * (size - len(head) - 3) + b"\n")
    return path


async def _burst(app: Any, messages: list[Any]) -> float:
    from tests.helpers import collect

    started = time.perf_counter()
    answers = await asyncio.gather(*(collect(app, m) for m in messages))
    elapsed = time.perf_counter() - started
    from bot.domain import FinalAnswer

    assert all(isinstance(a[-1], FinalAnswer) for a in answers), answers[0][-1]
    return elapsed


async def worker(gemini_url: str, workdir: Path) -> dict[str, Any]:
    """The measurements inside the engine's own process."""
    from bot.app import App
    from bot.config import settings_from_mapping
    from bot.domain import Attachment
    from tests.helpers import collect, incoming

    settings = settings_from_mapping(
        {
            "gemini": {"api_key": API_KEY, "base_url": gemini_url, "stream": True},
            "storage": {"url": f"sqlite+aiosqlite:///{workdir / 'gembot.db'}"},
            "rate_limits": {"per_user": "", "per_chat": ""},
            "telegram": {"enabled": False},
            "slack": {"enabled": False},
            "logging": {"level": "WARNING"},
        },
        env={},
    )
    voice_bytes = (MEDIA / "voice.ogg").read_bytes()

    def voice(user: str) -> Any:
        note = Attachment("audio/ogg", voice_bytes, "[voice note]", "", len(voice_bytes))
        return replace(incoming("", user=user, chat=user), attachments=(note,))

    async with await App.create(settings) as app:
        for i in range(3):  # warm-up: every path once
            await collect(app, incoming(f"hello {i}", user="warm"))
            await collect(app, voice("warm"))
        warm_file = big_pdf(workdir / "warm.pdf", 5 * 1024**2)
        data = warm_file.read_bytes()
        pdf = Attachment("", data, "[PDF warm.pdf]", "warm.pdf", len(data))
        await collect(app, replace(incoming("summarise", user="warm"), attachments=(pdf,)))
        del data, pdf

        text_makespan = await _burst(app, [incoming("hi", user=f"t{i}", chat=f"t{i}") for i in range(BURST)])
        voice_makespan = await _burst(app, [voice(f"v{i}") for i in range(BURST)])

        big = big_pdf(workdir / "big.pdf", FILE_MB * 1024**2)
        gc.collect()
        idle = _status_kb()["VmRSS"]
        _reset_peak()
        data = big.read_bytes()  # what an adapter's download holds
        attachment = Attachment("application/pdf", data, "[PDF big.pdf]", "big.pdf", len(data))
        message = replace(incoming("what is in it?", user="big"), attachments=(attachment,))
        events = await collect(app, message)
        peak = _status_kb()["VmHWM"]
    return {
        "idle_rss_kb": idle,
        "peak_rss_kb": peak,
        "file_bytes": FILE_MB * 1024**2,
        "answered": type(events[-1]).__name__,
        "text_makespan_s": text_makespan,
        "voice_makespan_s": voice_makespan,
    }


def _spread(received: list[float]) -> float:
    return (max(received) - min(received)) if received else 0.0


async def run(workdir: Path) -> dict[str, Any]:
    """Start the emulator here and the worker as a process; returns the figures."""
    from tests.fakes.gemini import GeminiEmulator

    async with GeminiEmulator(api_key=API_KEY, latency=LATENCY) as gemini:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.media",
            "--worker",
            gemini.base_url,
            str(workdir),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"the media worker failed ({process.returncode})")
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        generates = [r for r in gemini.requests if r.action.endswith("GenerateContent")]
        text_burst = [r.received_at for r in generates if gemini_user(r).startswith("hi")]
        voice_burst = [r.received_at for r in generates if _has_voice(r) and not gemini_user(r)]
        result["text_requests_spread_s"] = _spread(text_burst[-BURST:])
        result["voice_requests_spread_s"] = _spread(voice_burst[-BURST:])
        result["gemini_latency_s"] = LATENCY
    extra = result["peak_rss_kb"] - result["idle_rss_kb"]
    result["peak_over_idle_x_file"] = extra * 1024 / result["file_bytes"]
    return result


def gemini_user(request: Any) -> str:
    texts = [text for role, text in request.contents() if role == "user"]
    return texts[-1] if texts else ""


def _has_voice(request: Any) -> bool:
    body = request.body or {}
    parts = body.get("contents", [{}])[-1].get("parts", [])
    return any(p.get("inlineData", {}).get("mimeType") == "audio/ogg" for p in parts)


def render(result: dict[str, Any]) -> str:
    """The figures as the lines docs/benchmarks.md shows."""
    mb = result["file_bytes"] / 1024**2
    idle, peak = result["idle_rss_kb"] / 1024, result["peak_rss_kb"] / 1024
    times = result["peak_over_idle_x_file"]
    return "\n".join(
        [
            f"- {mb:.0f} MB file: idle RSS {idle:.0f} MB, peak while answering {peak:.0f} MB: "
            f"{peak - idle:.1f} MB above idle = {times:.2f}x the file (goal < 3x)",
            f"- {BURST} at once, Gemini answering after {result['gemini_latency_s']:.1f} s: text makespan "
            f"{result['text_makespan_s']:.2f} s (requests reached Gemini within "
            f"{result['text_requests_spread_s'] * 1000:.0f} ms), voice notes makespan "
            f"{result['voice_makespan_s']:.2f} s (within {result['voice_requests_spread_s'] * 1000:.0f} ms)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("GEMINI_URL", "WORKDIR"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(args.worker[0], Path(args.worker[1])))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(Path(tmp)))
    print(json.dumps(result, indent=2))
    print(render(result))


if __name__ == "__main__":
    main()
