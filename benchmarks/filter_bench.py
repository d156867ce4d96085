"""Sensitive-word filter benchmark: messages/s for 200-character messages against a 10,000-word list,
streamed replies, and the load time of a 50,000-entry words file.

Run: ``.venv/bin/python benchmarks/filter_bench.py`` (``--seconds`` per measurement, default 2).
"""

from __future__ import annotations

import argparse
import json
import random
import string
import tempfile
import time
from pathlib import Path

from bot.config import FilterSettings
from bot.guards.wordfilter import WordFilter

# 2,500 CJK ideographs stand in for the common ones.
_HAN = "".join(chr(code) for code in range(0x4E00, 0x4E00 + 2500))


def make_words(count: int, seed: int) -> list[str]:
    """A mix like real lists: two thirds Chinese words of 2-4 characters, one third Latin words."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < count:
        if rng.random() < 2 / 3:
            words.add("".join(rng.choices(_HAN, k=rng.randint(2, 4))))
        else:
            words.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9))))
    return sorted(words)


def make_messages(count: int, seed: int) -> list[str]:
    """200-character messages mixing Chinese, English words, digits and punctuation."""
    rng = random.Random(seed)
    messages = []
    for _ in range(count):
        parts: list[str] = []
        while sum(map(len, parts)) < 200:
            kind = rng.random()
            if kind < 0.5:
                parts.append("".join(rng.choices(_HAN, k=rng.randint(2, 8))))
            elif kind < 0.9:
                parts.append(" " + "".join(rng.choices(string.ascii_letters, k=rng.randint(2, 9))) + " ")
            else:
                parts.append(rng.choice(["，", "。", "! ", "123", "？", "ＡＢＣ"]))
        messages.append("".join(parts)[:200])
    return messages


def per_second(work: list[str], action: object, seconds: float) -> float:
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for item in work:
            action(item)  # type: ignore[operator]
        done += len(work)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each throughput measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON line of per-message costs last")
    args = parser.parse_args()

    words = make_words(10_000, seed=1)
    messages = make_messages(1_000, seed=2)
    # Some messages do contain listed words, so the mask path is measured too.
    for i in range(0, len(messages), 10):
        messages[i] = messages[i][:100] + words[i] + messages[i][100 + len(words[i]) :]

    for action in ("block", "mask"):
        f = WordFilter(FilterSettings(words=words, action=action))  # type: ignore[arg-type]
        rate = per_second(messages, f.check, args.seconds)
        print(f"check ({action}), 200-char messages, 10,000 words: {rate:,.0f} messages/s")

    f = WordFilter(FilterSettings(words=words, action="mask"))

    def stream(message: str) -> None:
        screen = f.screen_stream()
        for i in range(0, len(message), 20):
            screen.feed(message[i : i + 20])
        screen.finish()

    rate = per_second(messages, stream, args.seconds)
    print(f"streamed screen, 200-char replies in 20-char chunks, 10,000 words: {rate:,.0f} replies/s")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "words.txt"
        path.write_text("\n".join(make_words(50_000, seed=3)), encoding="utf-8")
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            loaded = WordFilter(FilterSettings(words_file=str(path)))
            timings.append(time.perf_counter() - started)
        print(
            f"load a 50,000-entry words file ({loaded.words.size:,} distinct after normalization): "
            f"best {min(timings):.3f} s, worst {max(timings):.3f} s (of 3)"
        )
    costs = per_message_costs(messages, args.seconds)
    for size, cost in costs.items():
        print(
            f"per answered message with {size:,} words (check + streamed screen, mask): "
            f"{(cost['check_s'] + cost['screen_s']) * 1e6:,.0f} µs"
        )
    if args.json:
        print(json.dumps({"per_message": costs}))


def per_message_costs(messages: list[str], seconds: float) -> dict[int, dict[str, float]]:
    """CPU seconds of one message check and one streamed screen of a 200-character reply, by list size.

    CPU time of this process (not the wall clock), so a busy machine does not inflate it.
    """
    costs: dict[int, dict[str, float]] = {}
    for size in (10_000, 50_000):
        f = WordFilter(FilterSettings(words=make_words(size, seed=4), action="mask"))

        def stream(message: str, f: WordFilter = f) -> None:
            screen = f.screen_stream()
            for i in range(0, len(message), 20):
                screen.feed(message[i : i + 20])
            screen.finish()

        costs[size] = {"check_s": cpu_per_item(messages, f.check, seconds / 2)}
        costs[size]["screen_s"] = cpu_per_item(messages, stream, seconds / 2)
    return costs


def cpu_per_item(work: list[str], action: object, seconds: float) -> float:
    done = 0
    started = time.process_time()
    while time.process_time() - started < seconds:
        for item in work:
            action(item)  # type: ignore[operator]
        done += len(work)
    return (time.process_time() - started) / done


if __name__ == "__main__":
    main()
