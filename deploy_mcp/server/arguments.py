"""Arguments a tool does not take are refused by name, never ignored.

An agent that sends ``confirm=true`` or ``approved_by="alice"`` and sees the call go through would learn that such
an argument means something. It never does: consent comes from the user's answer or a releaser's approval, which
no argument can carry. So an unknown argument stops the call before anything runs, and the message says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def unknown_arguments_message(
    tool: str, arguments: Mapping[str, Any] | None, schema: Mapping[str, Any] | None, *, changing: bool
) -> str | None:
    """The refusal for arguments ``tool`` does not take, or None when every argument is one of its own."""
    if not arguments or schema is None:
        return None
    known = list((schema.get("properties") or {}).keys())
    unknown = [name for name in arguments if name not in known]
    if not unknown:
        return None
    names = ", ".join(repr(name) for name in unknown)
    noun = "argument" if len(unknown) == 1 else "arguments"
    takes = ", ".join(known) if known else "no arguments"
    message = f"{tool}: unknown {noun} {names}, nothing was done. {tool} takes: {takes}."
    if changing:
        message += (
            " No argument is consent or an approval: a production change goes ahead when the user confirms it in "
            "their MCP client (the server asks them) or a releaser approves it through the team server."
        )
    return message
