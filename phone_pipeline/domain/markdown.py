"""Values from the data made safe for the Markdown tables of Dagster metadata.

A campaign id, request id or file name is text someone else wrote: in a Markdown table a `|` or a
newline breaks the table, `<script>` or `[a](javascript:...)` is markup, backticks open code, and
100 kB of it fills the event log. Every data value a table shows goes through `markdown_cell`.
Metadata leaves the restricted zone, so the value is also redacted (domain.redaction) first.
"""

from __future__ import annotations

import re
import unicodedata

from phone_pipeline.domain.redaction import redact

MAX_CELL_CHARS = 120
ELLIPSIS = "…"
# Line breaks of every kind (str.splitlines' set): a cell is one line.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
# Characters with an inline meaning in (GitHub-flavoured) Markdown: backslash-escaped.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|~!#$(){}+])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def _visible(char: str) -> bool:
    # Control (Cc) and format (Cf: bidi overrides, zero-width) characters are dropped.
    return unicodedata.category(char) not in ("Cc", "Cf")


def bounded_text(value: object, limit: int = MAX_CELL_CHARS) -> str:
    """`value` as one line of at most `limit` of its characters (the rest counted, not shown),
    control and format characters dropped, numbers redacted: for any metadata (JSON too)."""
    text = "" if value is None else str(value)
    # Redacted before it is cut, so that a number is never cut into a shorter, unredacted part.
    # A value this long is no identifier: only its start is looked at.
    head = redact(text[: limit * 4])
    head = "".join(char for char in _LINE_BREAKS.sub(" ", head) if _visible(char))
    if len(head) > limit or len(text) > limit * 4:
        return f"{head[:limit]}{ELLIPSIS} {len(text)} characters"
    return head


def markdown_cell(value: object, limit: int = MAX_CELL_CHARS) -> str:
    """`bounded_text(value)` as the text of one Markdown table cell: Markdown and HTML escaped."""
    escaped = _MARKDOWN_SPECIALS.sub(r"\\\1", bounded_text(value, limit))
    return "".join(_HTML.get(char, char) for char in escaped)


def markdown_table(header: list[str], align: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; `header` and `align` (`---`, `---:`) are the code's, every text cell
    of `rows` goes through `markdown_cell` (numbers are shown as they are)."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_table_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _table_cell(cell: object) -> str:
    # Counts are the code's own figures: shown as they are (a 7-digit count is no phone number).
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        return str(cell)
    return markdown_cell(cell)
