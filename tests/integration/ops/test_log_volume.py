"""Descriptor exhaustion is logged once per interval, not once per failed accept.

A child process sets up gembot's logging, lowers its descriptor limit, listens on loopback and holds every
connection it accepts while the parent opens many more: asyncio then fails accept() with EMFILE and reports
each failure to the ``asyncio`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time

CHILD = """
import asyncio, resource, sys
from bot.observability.logs import configure_logging

configure_logging("INFO", "json")
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
held = []

async def main():
    server = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(float(sys.argv[1]))

asyncio.run(main())
"""


async def test_descriptor_exhaustion_is_logged_once_per_interval() -> None:
    seconds = 3.0
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", CHILD, str(seconds)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    port = int(await asyncio.wait_for(child.stdout.readline(), 30))
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + seconds - 0.5
        while time.monotonic() < deadline:
            for _ in range(50):
                client = socket.socket()
                client.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    client.connect(("127.0.0.1", port))
                clients.append(client)
            await asyncio.sleep(0.05)
        _, stderr = await asyncio.wait_for(child.communicate(), 30)
    finally:
        for client in clients:
            client.close()
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    exhausted = [line for line in lines if "out of system resource" in line["event"]]
    assert len(exhausted) == 1, stderr.decode()[-2000:]
    assert "Too many open files" in exhausted[0]["event"]
    assert "exception" not in exhausted[0]
