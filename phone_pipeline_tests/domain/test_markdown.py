"""Issue 13: values from the data reach Markdown metadata escaped and bounded (domain.markdown)."""

from __future__ import annotations

import re

import pytest

from phone_pipeline.domain.markdown import (
    MAX_CELL_CHARS,
    bounded_text,
    markdown_cell,
    markdown_table,
)
from phone_pipeline.domain.redaction import REDACTED

HOSTILE = {
    "pipe": "spring|sale | x",
    "newlines": "spring\nsale\r\n| --- |\u2028x",
    "html": "<script>alert('x')</script><img src=x onerror=alert(1)>",
    "backticks": "```\ncode\n``` `x`",
    "markdown link": "[click](javascript:alert(1)) **bold** _it_ ~~s~~ ![i](http://x/i.png)",
    "backslash": "a\\|b",
    "bidi override": "abc\u202edcba",
    "100 kB": "x" * 100_000,
    "phone number": "call +1 212 555 0123",
}


def _cells(table: str) -> list[list[str]]:
    """The cells of each line, split on unescaped pipes the way GFM splits a table row."""
    return [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in table.splitlines()
    ]


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_value_stays_in_its_cell(value: str) -> None:
    table = markdown_table(["campaign", "calls"], ["---", "---:"], [[value, 3], ["next", 4]])
    lines = table.splitlines()
    assert len(lines) == 4  # header, alignment and one line per row: no newline got through
    assert [len(cells) for cells in _cells(table)] == [2, 2, 2, 2]
    assert _cells(table)[3] == ["next", "4"]
    assert len(table) < 2 * MAX_CELL_CHARS + 200
    assert "<" not in lines[2] and ">" not in lines[2]
    assert not re.search(r"(?<!\\)[`\[\]*_~]", lines[2])


def test_bounds_and_escapes() -> None:
    assert markdown_cell("a|b") == "a\\|b"
    assert markdown_cell("<script>") == "&lt;script&gt;"
    assert markdown_cell("`x`") == "\\`x\\`"
    assert markdown_cell("x\ny") == "x y"
    long = bounded_text("x" * 100_000)
    assert long == "x" * MAX_CELL_CHARS + "… 100000 characters"
    assert markdown_cell("call +1 212 555 0123") == f"call {REDACTED}".replace("<", "&lt;").replace(
        ">", "&gt;"
    )
    # A number cut at the bound is redacted whole first, never shown in part.
    assert "555" not in bounded_text("y" * (MAX_CELL_CHARS - 5) + "+1 212 555 0123")
    assert markdown_table(["n"], ["---:"], [[1234567]]).endswith("| 1234567 |")  # a count
