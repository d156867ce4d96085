"""Response parts: thoughts never in the answer, code execution as code blocks, what later turns need."""

from __future__ import annotations

from bot.llm.parts import merge_kept, read_parts
from tests.fakes.grounded import code_parts


def test_thought_parts_are_the_summary_and_only_their_signature_is_kept() -> None:
    read = read_parts(
        [
            {"text": "Considering the question…", "thought": True, "thoughtSignature": "c2lnMQ=="},
            {"text": "The answer is 4."},
            {"text": "", "thoughtSignature": "c2lnMg=="},
        ]
    )
    assert read.text == "The answer is 4."
    assert read.thoughts == "Considering the question…"
    assert read.kept == (
        {"text": "", "thoughtSignature": "c2lnMQ=="},
        {"text": "The answer is 4."},
        {"text": "", "thoughtSignature": "c2lnMg=="},
    )
    assert all("Considering" not in str(part) for part in read.kept)


def test_code_execution_renders_as_fenced_blocks_with_the_language() -> None:
    parts = code_parts("Let me compute it.", "print(2 ** 10)\n", "1024\n", "So 2¹⁰ is 1024.", "c2ln")
    read = read_parts(parts)
    assert read.code_runs == 1
    assert read.text == (
        "Let me compute it.\n\n```python\nprint(2 ** 10)\n```\n\n\n\n```output\n1024\n```\n\nSo 2¹⁰ is 1024."
    )
    assert read.kept == tuple(parts)


def test_a_failed_run_says_how_it_ended_and_backticks_in_code_get_a_longer_fence() -> None:
    read = read_parts(
        [
            {"executableCode": {"language": "PYTHON", "code": 's = """\n```\n"""'}},
            {"codeExecutionResult": {"outcome": "OUTCOME_DEADLINE_EXCEEDED", "output": ""}},
        ]
    )
    assert "````python\n" in read.text
    assert "```output\nOUTCOME_DEADLINE_EXCEEDED\n```" in read.text


def test_malformed_parts_are_skipped() -> None:
    read = read_parts([None, 3, {"text": 5}, {"executableCode": "x"}, {"text": "ok"}])
    assert read.text == "ok"
    assert read_parts("not a list").text == ""


def test_streamed_text_pieces_merge_but_signed_parts_stay_apart() -> None:
    merged = merge_kept(
        [
            {"text": "Hel"},
            {"text": "lo"},
            {"text": " there", "thoughtSignature": "s1"},
            {"text": "!"},
            {"text": ""},
            {"executableCode": {"language": "PYTHON", "code": "1"}},
        ]
    )
    assert merged == [
        {"text": "Hello"},
        {"text": " there", "thoughtSignature": "s1"},
        {"text": "!"},
        {"executableCode": {"language": "PYTHON", "code": "1"}},
    ]
