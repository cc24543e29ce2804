"""Just enough SQL lexing to find statements: comments dropped, string bodies emptied, line numbers kept.

Our own rules look for a handful of statement shapes (DROP TABLE, ALTER TABLE ... DROP COLUMN, RENAME, TYPE).
A regular expression over raw text would match inside comments, string literals and function bodies, so the
text is first reduced to its statements: ``--`` and nested ``/* */`` comments removed, '...' and $tag$...$tag$
bodies emptied (a function body is one statement to us), "quoted identifiers" kept. squawk parses properly; this
only has to be right about where statements start and what their leading keywords are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Statement:
    line: int  # 1-based line where the statement starts
    text: str  # comments removed, literals emptied, whitespace collapsed to single spaces


def statements(sql: str) -> list[Statement]:
    """The statements of ``sql`` in order; a trailing statement without ``;`` counts."""
    found: list[Statement] = []
    buffer: list[str] = []
    start_line: int | None = None
    line = 1
    i = 0
    n = len(sql)

    def flush() -> None:
        nonlocal buffer, start_line
        text = " ".join("".join(buffer).split())
        if text and start_line is not None:
            found.append(Statement(start_line, text))
        buffer = []
        start_line = None

    def begin() -> None:
        nonlocal start_line
        if start_line is None:
            start_line = line

    while i < n:
        char = sql[i]
        if char == "\n":
            line += 1
            buffer.append(" ")
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += sql[i] == "\n"
                    i += 1
            buffer.append(" ")
        elif char == "'":
            begin()
            escapes = i > 0 and sql[i - 1] in "eE"
            i += 1
            while i < n:
                if escapes and sql[i] == "\\":
                    i += 2
                    continue
                if sql[i] == "'":
                    if sql.startswith("''", i):
                        i += 2
                        continue
                    break
                line += sql[i] == "\n"
                i += 1
            i += 1
            buffer.append("''")
        elif char == '"':
            begin()
            end = sql.find('"', i + 1)
            end = n - 1 if end == -1 else end
            line += sql.count("\n", i, end)
            buffer.append(sql[i : end + 1])
            i = end + 1
        elif (
            char == "$"
            and (tag := _DOLLAR_TAG.match(sql, i))
            and not (i and (sql[i - 1].isalnum() or sql[i - 1] == "_"))
        ):
            begin()
            close = sql.find(tag.group(0), tag.end())
            close = n if close == -1 else close
            line += sql.count("\n", i, close)
            buffer.append("$$ $$")
            i = close + len(tag.group(0))
        elif char == ";":
            flush()
            i += 1
        else:
            if not char.isspace():
                begin()
            buffer.append(char)
            i += 1
    flush()
    return found


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split at ``separator`` outside parentheses (the actions of one ALTER TABLE)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def unquote(identifier: str) -> str:
    """``"Orders"`` -> ``Orders``; ``public.orders`` unchanged."""
    return identifier.replace('"', "")
