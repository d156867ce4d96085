r"""Markdown (as Gemini writes it) to Slack mrkdwn, and splitting mrkdwn under Slack's message size.

mrkdwn is not Markdown: ``*bold*``, ``_italic_``, ``~strike~``, `` `code` ``, fenced code without a
language, ``>`` quotes and ``<url|label>`` links; no headings, tables or nested emphasis markers. Only
``&``, ``<`` and ``>`` are escaped. Headings become bold lines, lists get bullets or numbers, tables become
aligned monospace blocks.

mrkdwn has no backslash escapes. Slack takes a zero-width space for a word boundary, so a literal ``*``,
``_``, ``~`` or backtick that could open formatting (``\*x\*`` in Markdown) gets one after it, and one
that could close it gets one before it; emphasis touching a word character (``**a**b``), which Slack would
not format, gets one outside its markers.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

# Slack truncates above 40,000 characters and advises staying under about 4,000 per message.
MESSAGE_LIMIT: Final = 3900
FENCE: Final = "```"
ZWSP: Final = "\u200b"
_MARKER_RUN: Final = re.compile(r"([*_~`])\1*")
_EMPHASIS: Final = {"strong": "*", "em": "_", "s": "~"}

_md = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])
_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")


def escape(text: str) -> str:
    """Escape the three characters mrkdwn gives a meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Render Markdown as mrkdwn (blocks separated by blank lines)."""
    root = SyntaxTreeNode(_md.parse(markdown))
    return "\n\n".join(block for block in _blocks(root.children, "") if block).strip("\n")


def render_chunks(markdown: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Render and split: every chunk is valid mrkdwn of at most ``limit`` characters."""
    return split(to_mrkdwn(markdown), limit)


# ----------------------------------------------------------------------------------------------- blocks


_QUOTE_MARKERS: Final = re.compile(r"(?m)^(?:> ?)+")


def _blocks(nodes: list[SyntaxTreeNode], indent: str) -> list[str]:
    out: list[str] = []
    for node in nodes:
        out.extend(_block(node, indent))
    return out


def _block(node: SyntaxTreeNode, indent: str) -> list[str]:
    kind = node.type
    if kind == "paragraph":
        return [_inline_children(node)]
    if kind == "heading":
        text = _inline_children(node, plain=True).strip()
        return [f"*{text}*"] if text else []
    if kind in ("fence", "code_block"):
        return [_code_block(node.content)]
    if kind in ("bullet_list", "ordered_list"):
        return ["\n".join(_list_lines(node, indent))]
    if kind == "blockquote":
        inner = "\n\n".join(_blocks(node.children, ""))
        return ["\n".join("> " + line if line else ">" for line in inner.split("\n"))]
    if kind == "hr":
        return ["───"]
    if kind == "table":
        return [_table(node)]
    if kind in ("html_block",):
        return [_literal(node.content.rstrip("\n"))]
    if node.children:
        return _blocks(node.children, indent)
    return [_literal(node.content)] if node.content else []


def _code_block(content: str) -> str:
    # A fence inside the code would end the block early; a zero-width space keeps it literal.
    body = _literal(content.rstrip("\n"))
    return f"{FENCE}\n{body}\n{FENCE}"


def _list_lines(node: SyntaxTreeNode, indent: str) -> list[str]:
    lines: list[str] = []
    ordered = node.type == "ordered_list"
    start = int(str(node.attrs.get("start", 1))) if ordered else 1
    for number, item in enumerate(node.children, start=start):
        marker = f"{number}. " if ordered else "• "
        first = True
        for child in item.children:
            if child.type in ("bullet_list", "ordered_list"):
                lines.extend(_list_lines(child, indent + "    "))
                continue
            blocks = _block(child, indent)
            if child.type == "blockquote":
                # A quote marker counts only at the start of a line: inside an item it is text.
                blocks = [_QUOTE_MARKERS.sub(lambda m: m[0].replace(">", "&gt;"), b) for b in blocks]
            for block in blocks:
                for line in block.split("\n"):
                    if first:
                        lines.append(f"{indent}{marker}{line}")
                        first = False
                    elif line.startswith(FENCE):
                        lines.append(line)  # fences stay at the margin so splitting can find them
                    else:
                        lines.append(f"{indent}    {line}" if line else "")
        if first:
            lines.append(f"{indent}{marker}".rstrip())
    return lines


def _table(node: SyntaxTreeNode) -> str:
    rows: list[list[str]] = []
    for section in node.children:
        for row in section.children:
            rows.append([_inline_children(cell, plain=True, escaped=False).strip() for cell in row.children])
    if not rows:
        return ""
    columns = max(len(row) for row in rows)
    widths = [max(_width(row[i]) if i < len(row) else 0 for row in rows) for i in range(columns)]

    def line(row: list[str]) -> str:
        cells = [(row[i] if i < len(row) else "") for i in range(columns)]
        return " | ".join(c + " " * (widths[i] - _width(c)) for i, c in enumerate(cells)).rstrip()

    out = [line(rows[0]), "-+-".join("-" * w for w in widths)]
    out += [line(row) for row in rows[1:]]
    return _code_block("\n".join(out))


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


# ----------------------------------------------------------------------------------------------- inline


def _inline_children(node: SyntaxTreeNode, *, plain: bool = False, escaped: bool = True) -> str:
    parts = [_inline(child, plain, escaped) for child in node.children]
    if not plain:
        # Slack ignores markers inside a word (``*a*b``): a zero-width space makes the word boundary.
        for i, child in enumerate(node.children):
            mark = _EMPHASIS.get(child.type)
            if mark is None or not parts[i].startswith(mark):
                continue
            before = parts[i - 1][-1:] if i else ""
            after = parts[i + 1][:1] if i + 1 < len(parts) else ""
            if before.isalnum():
                parts[i] = ZWSP + parts[i]
            if after.isalnum() and parts[i].endswith(mark):
                parts[i] += ZWSP
    return "".join(parts)


def _literal(text: str) -> str:
    """Escaped text in which a run of backticks cannot open or close a code block."""
    return escape(text).replace(FENCE, "``\u200b`")


def _text(text: str) -> str:
    """Escaped prose in which no literal marker character can open or close formatting."""
    text = escape(text)

    def guard(run: re.Match[str]) -> str:
        # "" is the edge of this text: the neighbour is unknown, so assume the worst.
        before, after = text[run.start() - 1 : run.start()], text[run.end() : run.end() + 1]
        opens = not (after.isspace() or before.isalnum())
        closes = not (before.isspace() or after.isalnum())
        core = ZWSP.join(run[0]) if run[0].startswith(FENCE) else run[0]  # never a code fence
        return (ZWSP if closes else "") + core + (ZWSP if opens else "")

    return _MARKER_RUN.sub(guard, text)


def _inline(node: SyntaxTreeNode, plain: bool, escaped: bool) -> str:
    esc = _literal if escaped else (lambda s: s)
    kind = node.type
    if kind == "inline":
        return _inline_children(node, plain=plain, escaped=escaped)
    if kind == "text":
        return _text(node.content) if escaped else node.content
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "code_inline":
        return esc(node.content) if plain else f"`{esc(node.content)}`"
    inner = _inline_children(node, plain=plain, escaped=escaped)
    if kind in _EMPHASIS:
        if plain or not inner.strip():
            return inner
        mark = _EMPHASIS[kind]
        # Markers must touch text: move surrounding spaces outside them.
        core = inner.strip()
        lead = inner[: len(inner) - len(inner.lstrip())]
        trail = inner[len(inner.rstrip()) :]
        return f"{lead}{mark}{core}{mark}{trail}"
    if kind in ("link", "image"):
        href = str(node.attrs.get("href" if kind == "link" else "src", ""))
        label = _inline_children(node, plain=True, escaped=escaped) or str(node.attrs.get("alt", ""))
        if plain or not escaped or not href:
            return label if label else href
        url = escape(href).replace("|", "%7C")
        if not label or label in (escape(href), escape(unquote(href))) or href == f"mailto:{label}":
            return f"<{url}>"
        return f"<{url}|{label}>"
    if kind == "html_inline":
        return esc(node.content)
    return inner if node.children else esc(node.content)


# ----------------------------------------------------------------------------------------------- split


def split(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut mrkdwn into pieces of at most ``limit`` characters.

    Cuts prefer blank lines, then line ends, then spaces; a code block that is cut is closed at the end
    of one piece and reopened at the start of the next; links and entities are never cut.
    """
    if limit < 16:
        raise ValueError("limit too small")
    text = text.strip("\n")
    if len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    current = ""
    for block in _split_blocks(text):
        for piece in _fit(block, limit):
            if not current:
                current = piece
            elif len(current) + 2 + len(piece) <= limit:
                current += "\n\n" + piece
            else:
                chunks.append(current)
                current = piece
    if current:
        chunks.append(current)
    return chunks


def _split_blocks(text: str) -> list[str]:
    """Blank-line separated blocks; a fenced code block (blank lines included) stays one block."""
    blocks: list[str] = []
    lines: list[str] = []
    in_code = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(FENCE) and stripped.count(FENCE) % 2 == 1:
            if not in_code and lines:
                blocks.append("\n".join(lines))
                lines = []
            lines.append(line)
            in_code = not in_code
            if not in_code:
                blocks.append("\n".join(lines))
                lines = []
            continue
        if not in_code and not line.strip():
            if lines:
                blocks.append("\n".join(lines))
                lines = []
            continue
        lines.append(line)
    if lines:
        if in_code:
            lines.append(FENCE)
        blocks.append("\n".join(lines))
    return blocks


def _fit(block: str, limit: int) -> list[str]:
    if len(block) <= limit:
        return [block]
    lines = block.split("\n")
    if lines[0].strip().startswith(FENCE) and lines[-1].strip() == FENCE and len(lines) >= 2:
        return _fit_code(lines[1:-1], limit)
    return _pack(lines, limit, "\n")


def _fit_code(lines: list[str], limit: int) -> list[str]:
    inner = limit - 2 * (len(FENCE) + 1)
    pieces = _pack(lines, inner, "\n", keep_spaces=True)
    return [f"{FENCE}\n{piece}\n{FENCE}" for piece in pieces]


def _pack(parts: list[str], limit: int, joiner: str, *, keep_spaces: bool = False) -> list[str]:
    out: list[str] = []
    current: str | None = None
    for part in parts:
        subparts = [part] if len(part) <= limit else _cut_line(part, limit, keep_spaces=keep_spaces)
        for sub in subparts:
            if current is None:
                current = sub
            elif len(current) + len(joiner) + len(sub) <= limit:
                current += joiner + sub
            else:
                out.append(current)
                current = sub
    if current is not None:
        out.append(current)
    return out


def _cut_line(line: str, limit: int, *, keep_spaces: bool) -> list[str]:
    pieces: list[str] = []
    rest = line
    while len(rest) > limit:
        cut = _safe_cut(rest, limit)
        if cut == 0:
            # A link longer than a whole piece cannot stay a link: its label and URL become plain text.
            rest = _unlink(rest)
            continue
        if not keep_spaces:
            space = rest.rfind(" ", limit // 2, cut + 1)
            if space > 0 and _safe_cut(rest, space) == space:
                cut = space
        pieces.append(rest[:cut].rstrip() if not keep_spaces else rest[:cut])
        rest = rest[cut:] if keep_spaces else rest[cut:].lstrip(" ")
    if rest:
        pieces.append(rest)
    return pieces


def _safe_cut(text: str, at: int) -> int:
    """The largest position <= ``at`` that is not inside ``<...>``, an ``&entity;`` or a surrogate pair;
    0 when there is none (``text`` starts with a link longer than ``at``)."""
    head = text[:at]
    opened = head.rfind("<")
    if opened > head.rfind(">"):
        at = opened
        head = text[:at]
    entity = _ENTITY_TAIL.search(head)
    if entity is not None:
        at = entity.start()
    if 0 < at < len(text) and "\udc00" <= text[at] <= "\udfff":
        at -= 1
    return at


def _unlink(text: str) -> str:
    """``text`` with its leading ``<url|label>`` as ``label url`` (a bare ``<`` is dropped)."""
    end = text.find(">")
    if not text.startswith("<") or end < 0:
        return text[1:]
    url, _, label = text[1:end].partition("|")
    rest = text[end + 1 :]
    return (f"{label} {url}" if label else url) + (" " if rest[:1].isalnum() else "") + rest
