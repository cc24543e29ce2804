"""The one family of errors a user or an agent can cause.

Anything raised as a `UserError` is shown to the caller as its message alone; anything else is a bug, logged on
the server and reported to the caller without internals. Each subsystem's own errors derive from this, so the
MCP face and the CLI need one `except` to tell the two apart.
"""


class UserError(Exception):
    """A mistake the caller can fix; the message says which field and how."""
