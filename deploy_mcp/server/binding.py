"""Turning plain tool functions into MCP tools.

Tools are written as plain typed functions whose first parameter is the `App` they act on, so they can be called
and tested directly. Binding hides that parameter from the schema the client sees and turns the errors a caller
can cause into a clear tool error: the agent reads the message, never a traceback.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from deploy_mcp.errors import UserError


def bind(fn: Callable[..., Any], app: Any) -> Callable[..., Any]:
    """``fn(app, **arguments)`` as a function of ``**arguments`` alone, with user errors made readable."""
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    first, *rest = signature.parameters.values()

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def tool(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(app, *args, **kwargs)
            except UserError as exc:
                raise ToolError(str(exc)) from None

    else:

        @functools.wraps(fn)
        def tool(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(app, *args, **kwargs)
            except UserError as exc:
                raise ToolError(str(exc)) from None

    del tool.__wrapped__  # the SDK must see the bound signature, not the original
    tool.__doc__ = inspect.getdoc(fn)  # the description an agent reads, without source indentation
    # Annotations are resolved here: the SDK builds the schema from the signature, outside fn's module.
    resolved = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in rest]
    tool.__signature__ = signature.replace(parameters=resolved, return_annotation=hints.get("return"))  # type: ignore[attr-defined]
    tool.__annotations__ = {name: hint for name, hint in hints.items() if name != first.name}
    return tool


def describe_invalid_arguments(tool: str, error: Exception, schema: dict[str, Any] | None) -> str:
    """The SDK's argument validation error, said for an agent: each field, what was wrong, and what it takes.

    pydantic's own text names an internal model (``deployArguments``) and a documentation URL; the agent needs
    the field, the value it sent and the field's description from the schema it was given.
    """
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return f"{tool}: the arguments are not valid: {error}"
    properties = (schema or {}).get("properties", {})
    lines = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"]) or "arguments"
        top = str(problem["loc"][0]) if problem["loc"] else ""
        if problem["type"] == "missing":
            said = "is required"
        elif problem["type"] == "extra_forbidden":
            said = f"is not an argument of {tool}; its arguments: {', '.join(properties) or 'none'}"
        else:
            said = f"{problem['msg'][0].lower()}{problem['msg'][1:]} (got {problem['input']!r:.80})"
        hint = properties.get(top, {}).get("description")
        described = hint and problem["type"] != "extra_forbidden"
        lines.append(f"{field}: {said}" + (f" ({hint.rstrip('.')})" if described else ""))
    return f"{tool}: invalid arguments, nothing was done. " + "; ".join(lines)
