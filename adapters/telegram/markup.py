"""Gemini's Markdown turned into the HTML subset the Telegram Bot API accepts, and long answers split under
Telegram's limit (counted in UTF-16 code units, as Telegram counts them)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

TELEGRAM_TEXT_LIMIT = 4096
"""Characters of one Telegram message after entity parsing (counted here in UTF-16 code units)."""

_SENTENCE_END = re.compile(r"[.!?…。！？](?=\s)|[。！？]")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram counts entities and limits in."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _fit_index(text: str, limit: int) -> int:
    """The largest i such that ``text[:i]`` is at most ``limit`` UTF-16 units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def find_cut(text: str, limit: int, *, keep_whole: Sequence[tuple[int, int]] = ()) -> int:
    """Where to cut ``text`` so that ``text[:cut]`` fits in ``limit`` UTF-16 units.

    Preference: a paragraph break outside the ``keep_whole`` ranges (code blocks), a line break outside
    them, any paragraph or line break, a sentence end, a space, and only then a hard cut. Breaks in the
    first third of the window are not taken while a weaker break further on exists, so parts stay large;
    but a range that crosses the window's end and fits ``limit`` on its own is always moved whole to the
    next part, however short that leaves this one.
    """
    end = _fit_index(text, limit)
    if end >= len(text):
        return len(text)
    for start, stop in keep_whole:
        if 0 < start < end < stop and utf16_len(text[start:stop]) <= limit:
            before = len(text[:start].rstrip())
            return before or start
    window = text[:end]
    floor = max(1, end // 3)

    def outside(i: int) -> bool:
        return not any(start < i < stop for start, stop in keep_whole)

    def last_break(sep: str, *, protected: bool) -> int | None:
        i = window.rfind(sep)
        while i >= floor:
            if not protected or outside(i):
                return i
            i = window.rfind(sep, 0, i)
        return None

    for sep, protected in (("\n\n", True), ("\n", True), ("\n\n", False), ("\n", False)):
        cut = last_break(sep, protected=protected)
        if cut is not None:
            return cut
    sentence_ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() >= floor]
    if sentence_ends:
        return sentence_ends[-1]
    space = max(window.rfind(" "), window.rfind("\t"))
    if space >= floor:
        return space
    return end


def split_plain(text: str, limit: int) -> list[str]:
    """Plain text in parts of at most ``limit`` UTF-16 units, cut at the most natural boundary."""
    parts: list[str] = []
    rest = text.strip()
    while rest:
        cut = find_cut(rest, limit)
        part = rest[:cut].rstrip()
        if part:
            parts.append(part)
        rest = rest[cut:].lstrip()
    return parts


# ------------------------------------------------------------------------------------------- Telegram

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["strikethrough", "table"])
_SAFE_LINK = re.compile(r"^(https?://|tg://|mailto:)", re.IGNORECASE)
_LANGUAGE = re.compile(r"^[A-Za-z0-9_+#.-]{1,32}$")
_TAG = re.compile(r"<(/?)([a-z-]+)([^>]*)>")
_ANY_TAG = re.compile(r"<[^>]+>")
_TOKEN = re.compile(r"(<[^>]+>)|(&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);)|([^<&]+)", re.DOTALL)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


class _TelegramHtml:
    """Walks markdown-it's syntax tree and writes Telegram's HTML subset."""

    def render(self, markdown: str) -> str:
        root = SyntaxTreeNode(_MARKDOWN.parse(markdown))
        return self._blocks(root.children, depth=0, in_quote=False, sep="\n\n").strip()

    def _blocks(self, nodes: Sequence[SyntaxTreeNode], *, depth: int, in_quote: bool, sep: str) -> str:
        rendered = (self._block(node, depth=depth, in_quote=in_quote) for node in nodes)
        return sep.join(part for part in rendered if part)

    def _block(self, node: SyntaxTreeNode, *, depth: int, in_quote: bool) -> str:
        kind = node.type
        if kind == "paragraph":
            return self._inline_of(node)
        if kind == "heading":
            return f"<b>{self._inline_of(node)}</b>"
        if kind in ("bullet_list", "ordered_list"):
            return self._list(node, depth=depth, in_quote=in_quote)
        if kind == "blockquote":
            inner = self._blocks(node.children, depth=depth, in_quote=True, sep="\n")
            # Telegram does not nest blockquotes.
            return inner if in_quote else f"<blockquote>{inner}</blockquote>"
        if kind in ("fence", "code_block"):
            code = _escape(node.content.rstrip("\n"))
            language = node.info.strip().split(" ")[0] if node.info else ""
            if language and _LANGUAGE.match(language):
                return f'<pre><code class="language-{language}">{code}</code></pre>'
            return f"<pre>{code}</pre>"
        if kind == "hr":
            return "———"
        if kind == "table":
            return f"<pre>{_escape(self._table(node))}</pre>"
        if kind == "html_block":
            return _escape(node.content.rstrip("\n"))
        return self._blocks(node.children, depth=depth, in_quote=in_quote, sep="\n\n")

    def _list(self, node: SyntaxTreeNode, *, depth: int, in_quote: bool) -> str:
        ordered = node.type == "ordered_list"
        number = int(str(node.attrs.get("start", 1))) if ordered else 0
        lines = []
        for item in node.children:
            marker = f"{number}." if ordered else "•"
            number += 1
            body = self._blocks(item.children, depth=depth + 1, in_quote=in_quote, sep="\n")
            lines.append(f"{'  ' * depth}{marker} {body}")
        return "\n".join(lines)

    def _table(self, node: SyntaxTreeNode) -> str:
        rows: list[list[str]] = []
        for section in node.children:
            for row in section.children:
                rows.append([telegram_plain(self._inline_of(cell)) for cell in row.children])
        widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(max(map(len, rows)))]
        lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
        if len(lines) > 1:
            lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join(lines)

    def _inline_of(self, node: SyntaxTreeNode) -> str:
        return "".join(self._inline(child) for child in node.children)

    def _inline(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind == "inline":
            return self._inline_of(node)
        if kind == "text":
            return _escape(node.content)
        if kind in ("softbreak", "hardbreak"):
            return "\n"
        if kind == "code_inline":
            return f"<code>{_escape(node.content)}</code>"
        if kind in ("strong", "em", "s"):
            tag = {"strong": "b", "em": "i", "s": "s"}[kind]
            return f"<{tag}>{self._inline_of(node)}</{tag}>"
        if kind == "link":
            inner = self._inline_of(node)
            href = str(node.attrs.get("href", ""))
            if _SAFE_LINK.match(href):
                return f'<a href="{html.escape(href, quote=True)}">{inner}</a>'
            return inner
        if kind == "image":
            return self._inline_of(node) or _escape(str(node.attrs.get("alt", "")))
        if kind == "html_inline":
            return _escape(node.content)
        return self._inline_of(node) if node.children else _escape(node.content)


def telegram_html(markdown: str) -> str:
    """Gemini's Markdown as Telegram HTML: only b, i, s, code, pre, a and blockquote, text escaped."""
    rendered = _TelegramHtml().render(markdown)
    return rendered or _escape(markdown.strip())


def telegram_plain(html_text: str) -> str:
    """The text a Telegram HTML message shows, without the markup (the plain-text fallback)."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


@dataclass(frozen=True, slots=True)
class _Tag:
    raw: str
    name: str
    closing: bool


@dataclass(frozen=True, slots=True)
class _Char:
    raw: str
    visible: str


def _html_items(html_text: str) -> list[_Tag | _Char]:
    items: list[_Tag | _Char] = []
    for match in _TOKEN.finditer(html_text):
        tag, entity, text = match.groups()
        if tag is not None:
            parsed = _TAG.fullmatch(tag)
            name = parsed.group(2) if parsed else tag.strip("</>").split(" ")[0]
            items.append(_Tag(tag, name, tag.startswith("</")))
        elif entity is not None:
            items.append(_Char(entity, html.unescape(entity)))
        else:
            items.extend(_Char(_escape(ch), ch) for ch in text)
    return items


def split_telegram_html(html_text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Telegram HTML in parts whose shown text fits ``limit``, each part with its tags balanced.

    Parts break at paragraph boundaries outside code blocks where possible; a tag open at a break is
    closed at the end of one part and opened again at the start of the next.
    """
    shown = html.unescape(_ANY_TAG.sub("", html_text))
    if shown.strip() == shown and shown and utf16_len(shown) <= limit:
        return [html_text]  # the usual case, one part: no need to walk it character by character
    items = _html_items(html_text)
    visible = "".join(item.visible for item in items if isinstance(item, _Char))
    pre_ranges: list[tuple[int, int]] = []
    position, pre_start = 0, -1
    for item in items:
        if isinstance(item, _Char):
            position += 1
        elif item.name == "pre":
            if item.closing and pre_start >= 0:
                pre_ranges.append((pre_start, position))
            elif not item.closing:
                pre_start = position

    parts: list[str] = []
    stack: list[_Tag] = []
    p = 0  # next item
    char_index = 0  # visible index of the next _Char item
    start = 0
    while True:
        while start < len(visible) and visible[start].isspace():
            start += 1
        if start >= len(visible):
            break
        ranges = [(a - start, b - start) for a, b in pre_ranges if b > start]
        cut = start + find_cut(visible[start:], limit, keep_whole=ranges)
        end = cut
        while end > start and visible[end - 1].isspace():
            end -= 1
        # Skip what lies before the part (whitespace), keeping track of the open tags.
        while p < len(items):
            item = items[p]
            if isinstance(item, _Char):
                if char_index >= start:
                    break
                char_index += 1
            else:
                _apply(stack, item)
            p += 1
        out = [tag.raw for tag in stack]
        while p < len(items):
            item = items[p]
            if isinstance(item, _Char):
                if char_index >= end:
                    break
                char_index += 1
                out.append(item.raw)
            else:
                if char_index >= end and not item.closing:
                    break
                _apply(stack, item)
                out.append(item.raw)
            p += 1
        out.extend(f"</{tag.name}>" for tag in reversed(stack))
        parts.append("".join(out))
        start = cut
    return parts


def _apply(stack: list[_Tag], tag: _Tag) -> None:
    if not tag.closing:
        stack.append(tag)
    elif stack and stack[-1].name == tag.name:
        stack.pop()


def render_telegram(
    markdown: str,
    *,
    notice: str | None = None,
    limit: int = TELEGRAM_TEXT_LIMIT,
    head: str = "",
    tail: str = "",
) -> list[str]:
    """One answer as Telegram HTML messages; a ``notice`` is appended as plain text to the same answer.

    ``head`` and ``tail`` are Telegram HTML put above and under the answer (e.g. thoughts, sources).
    """
    body = "\n\n".join(
        part for part in (head, telegram_html(markdown) if markdown.strip() else "", tail) if part
    )
    if notice:
        body = f"{body}\n\n{_escape(notice)}" if body else _escape(notice)
    return split_telegram_html(body, limit)
