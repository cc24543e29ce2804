"""Keep blocks: the parts of DEPLOY.md that belong to people, carried over byte for byte when it is regenerated.

A keep block is an opening comment line ``<!-- deploy-mcp:keep NAME -->``, any text, and a closing comment line
``<!-- /deploy-mcp:keep NAME -->`` (the name in the closing line may be left out). Each marker is an HTML
comment alone on its line, so it is invisible when rendered and never collides with prose; NAME is letters,
digits, '.', '_' and '-', unique in the file.

Merging rules, chosen so that regenerating never loses what a person wrote and is itself idempotent:

- a block the template provides keeps the old file's text, whatever it is (edited or not);
- a block a person added keeps its place relative to the heading it followed: it goes at the end of that
  heading's section (before the next heading), in its original order;
- a block whose heading no longer exists is moved under a final "Kept notes" heading, never dropped;
- text outside keep blocks is the generator's and is replaced.

A damaged old file (a block opened twice, never closed, closed under another name) is an error that names the
line: guessing where a person's text ends could silently cut it in half.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deploy_mcp.errors import UserError

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
OPEN = re.compile(rf"^<!--\s*deploy-mcp:keep\s+({NAME})\s*-->$")
CLOSE = re.compile(rf"^<!--\s*/deploy-mcp:keep(?:\s+({NAME}))?\s*-->$")
FENCE = re.compile(r"^(`{3,}|~{3,})")
HEADING = re.compile(r"^#{1,6}\s")
KEPT_NOTES_HEADING = "## Kept notes"
KEPT_NOTES_INTRO = (
    "Keep blocks whose heading no longer exists in the generated document; move them where they belong or delete them."
)


class MarkerError(UserError):
    """The existing file's keep markers are damaged; the message names the line and the fix."""


@dataclass(frozen=True)
class Block:
    name: str
    lines: tuple[str, ...]  # opening marker, body, closing marker: exactly as in the file
    anchor: tuple[str, int] | None  # the heading it follows and which occurrence of that heading


@dataclass(frozen=True)
class Merged:
    text: str
    kept: tuple[str, ...]  # template blocks whose edited text came from the old file
    placed: tuple[str, ...]  # blocks a person added, placed under their heading
    orphaned: tuple[str, ...]  # blocks moved under "Kept notes"


def open_marker(name: str) -> str:
    return f"<!-- deploy-mcp:keep {name} -->"


def close_marker(name: str) -> str:
    return f"<!-- /deploy-mcp:keep {name} -->"


def parse(text: str, source: str) -> list[Block]:
    """Every keep block of ``text`` in order; MarkerError for damaged markers (``source`` names the file)."""
    blocks: list[Block] = []
    seen: dict[str, int] = {}
    lines = text.splitlines()
    headings: dict[str, int] = {}
    anchor: tuple[str, int] | None = None
    fence: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        fence_match = FENCE.match(stripped)
        if fence_match:
            fence = fence_match.group(1) if fence is None else (None if stripped == fence else fence)
        elif fence is None and HEADING.match(line):
            headings[line] = headings.get(line, 0) + 1
            anchor = (line, headings[line])
        elif fence is None and (opened := OPEN.match(stripped)):
            name = opened.group(1)
            if name in seen:
                raise MarkerError(
                    f"{source} line {index + 1}: keep block {name!r} appears twice (first at line {seen[name]}); "
                    "give one of them another name"
                )
            seen[name] = index + 1
            end = _close(lines, index, name, source)
            blocks.append(Block(name, tuple(lines[index : end + 1]), anchor))
            index = end + 1
            continue
        elif fence is None and (closed := CLOSE.match(stripped)):
            label = f" {closed.group(1)!r}" if closed.group(1) else ""
            raise MarkerError(
                f"{source} line {index + 1}: closing marker for keep block{label} without an opening marker; "
                "add the opening marker above the text to keep, or delete this line"
            )
        index += 1
    return blocks


def _close(lines: list[str], start: int, name: str, source: str) -> int:
    for index in range(start + 1, len(lines)):
        stripped = lines[index].strip()
        if closed := CLOSE.match(stripped):
            if closed.group(1) not in (None, name):
                raise MarkerError(
                    f"{source} line {index + 1}: keep block {name!r} (opened at line {start + 1}) is closed as "
                    f"{closed.group(1)!r}; use the same name in both markers"
                )
            return index
        if opened := OPEN.match(stripped):
            raise MarkerError(
                f"{source} line {index + 1}: keep block {opened.group(1)!r} opens inside keep block {name!r} "
                f"(opened at line {start + 1}); close {name!r} first with {close_marker(name)}"
            )
    raise MarkerError(
        f"{source} line {start + 1}: keep block {name!r} is never closed; add {close_marker(name)} after its text"
    )


def merge(generated: str, old: str | None, source: str) -> Merged:
    """The generated text with the old file's keep blocks carried over (see the module's rules)."""
    fresh = parse(generated, "the generated DEPLOY.md")
    if not old:
        return Merged(generated, (), (), ())
    previous = parse(old, source)
    by_name = {block.name: block for block in previous}
    lines = generated.splitlines()

    # template blocks: the old text replaces the default, in place (bottom up, so indexes stay valid)
    kept = []
    for block in reversed(fresh):
        if block.name in by_name and by_name[block.name].lines[1:-1] != block.lines[1:-1]:
            start = _find(lines, block.lines[0])
            lines[start : start + len(block.lines)] = by_name[block.name].lines
            kept.append(block.name)
    template_names = {block.name for block in fresh}
    added = [block for block in previous if block.name not in template_names]

    placed: list[str] = []
    orphaned: list[Block] = []
    groups: dict[tuple[str, int] | None, list[Block]] = {}
    for block in added:
        groups.setdefault(block.anchor, []).append(block)
    # bottom up, so the positions of the headings still to visit do not move
    for anchor, blocks in sorted(groups.items(), key=lambda item: -_heading_index(lines, item[0])):
        headings = _headings(lines)
        at = _heading_index(lines, anchor)
        if at < 0:
            orphaned.extend(blocks)
            continue
        end = next((i for i in headings if i > at), len(lines))
        insertion: list[str] = []
        for block in blocks:
            insertion += [*block.lines, ""]
        if end == len(lines):
            insertion = ["", *insertion[:-1]]
        lines[end:end] = insertion
        placed.extend(block.name for block in blocks)
    orphaned.sort(key=added.index)
    if orphaned:
        lines += ["", KEPT_NOTES_HEADING, "", KEPT_NOTES_INTRO]
        for block in orphaned:
            lines += ["", *block.lines]
    text = "\n".join(lines).rstrip("\n") + "\n"
    return Merged(text, tuple(reversed(kept)), tuple(placed), tuple(block.name for block in orphaned))


def _find(lines: list[str], marker: str) -> int:
    return next(i for i, line in enumerate(lines) if line.strip() == marker.strip())


def _heading_index(lines: list[str], anchor: tuple[str, int] | None) -> int:
    """Where the n-th occurrence of a heading is (outside fences and keep blocks); -1 when it is not there."""
    if anchor is None:
        return -1
    heading, occurrence = anchor
    matches = [i for i in _headings(lines) if lines[i] == heading]
    return matches[occurrence - 1] if len(matches) >= occurrence else -1


def _headings(lines: list[str]) -> list[int]:
    """Indexes of the document's own headings: not in a code fence, not inside a keep block."""
    found: list[int] = []
    fence: str | None = None
    in_block = False
    for index, line in enumerate(lines):
        stripped = line.strip()
        if in_block:
            in_block = not CLOSE.match(stripped)
            continue
        match = FENCE.match(stripped)
        if match:
            fence = match.group(1) if fence is None else (None if stripped == fence else fence)
        elif fence is None and OPEN.match(stripped):
            in_block = True
        elif fence is None and HEADING.match(line):
            found.append(index)
    return found
