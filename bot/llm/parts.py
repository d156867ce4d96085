"""The parts of one response candidate: the answer's Markdown, the thought summary, and what to keep.

Text parts make the answer; thought parts (``"thought": true``) never do, they are the thought summary
Gemini sends when asked for it. Code execution parts (``executableCode {language, code}``,
``codeExecutionResult {outcome, output}``) are shown as fenced code blocks within the answer. The parts
a later request must send back (text with its ``thoughtSignature``, the code execution parts) are kept
without any thought text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

_SIGNATURE: Final = "thoughtSignature"
_OK_OUTCOME: Final = "OUTCOME_OK"


@dataclass(frozen=True, slots=True)
class CandidateParts:
    """One candidate's parts read for the answer, the thought summary and later turns."""

    text: str = ""
    thoughts: str = ""
    kept: tuple[Mapping[str, Any], ...] = ()
    code_runs: int = 0


def read_parts(parts: object) -> CandidateParts:
    """Read ``content.parts`` of a candidate (anything malformed is skipped, never raised)."""
    if not isinstance(parts, Sequence) or isinstance(parts, str):
        return CandidateParts()
    texts: list[str] = []
    thoughts: list[str] = []
    kept: list[Mapping[str, Any]] = []
    runs = 0
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        signature = part.get(_SIGNATURE)
        signed = {_SIGNATURE: signature} if isinstance(signature, str) and signature else {}
        text = part.get("text")
        if part.get("thought"):
            if isinstance(text, str):
                thoughts.append(text)
            if signed:  # the signature is sent back, the thought itself never
                kept.append({"text": "", **signed})
            continue
        code = part.get("executableCode")
        result = part.get("codeExecutionResult")
        if isinstance(text, str):
            texts.append(text)
            kept.append({"text": text, **signed})
        elif isinstance(code, Mapping):
            runs += 1
            texts.append(code_block(_str(code.get("code")), _str(code.get("language")).lower()))
            kept.append({"executableCode": dict(code), **signed})
        elif isinstance(result, Mapping):
            texts.append(result_block(_str(result.get("outcome")), _str(result.get("output"))))
            kept.append({"codeExecutionResult": dict(result), **signed})
    return CandidateParts("".join(texts), "".join(thoughts), tuple(kept), runs)


def code_block(code: str, language: str) -> str:
    """A fenced Markdown code block on lines of its own, its info string naming the language."""
    return _fenced(code, language if language and language != "language_unspecified" else "")


def result_block(outcome: str, output: str) -> str:
    """The output of a code run as a fenced block; a failed run says how it ended."""
    body = output if outcome in ("", _OK_OUTCOME) else f"{outcome}\n{output}".rstrip()
    return _fenced(body, "output")


def merge_kept(parts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The kept parts of a whole answer with the streamed text pieces joined: a text part without a
    signature is appended to the unsigned text part before it; a signed part starts a new one."""
    merged: list[dict[str, Any]] = []
    for part in parts:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and set(part) == {"text"}
            and set(previous) == {"text"}
            and isinstance(part["text"], str)
        ):
            previous["text"] += part["text"]
        elif set(part) == {"text"} and not part["text"]:
            continue
        else:
            merged.append(dict(part))
    return merged


def _fenced(body: str, info: str) -> str:
    longest = max((len(run) for run in body.split("\n") if run and set(run) == {"`"}), default=0)
    fence = "`" * max(3, longest + 1)
    return f"\n\n{fence}{info}\n{body.rstrip(chr(10))}\n{fence}\n\n"


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
