"""python-telegram-bot's HTTP requests for the Bot API, with answers parsed by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from telegram.request import HTTPXRequest


class BotApiRequest(HTTPXRequest):
    """PTB's httpx request; a JSON answer is parsed by orjson (a few times faster than ``json``).

    A body orjson refuses (invalid UTF-8, say) goes to PTB's own parser, which replaces bad bytes and
    raises PTB's error for what is not JSON, as before.
    """

    @staticmethod
    def parse_json_payload(payload: bytes) -> Any:
        """The parsed answer."""
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            return HTTPXRequest.parse_json_payload(payload)
