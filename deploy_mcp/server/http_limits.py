"""How long and how much the HTTP server gives one client: header timeout, idle sessions, session count.

Sessions use the SDK's own settings (``session_idle_timeout``, ``max_sessions`` of the streamable HTTP session
manager): without them every ``initialize`` left a session in memory for good. uvicorn has no header timeout
(``timeout_keep_alive`` starts only after a first response), so a request whose headers never finish held its
connection forever; ``HeaderTimeoutH11Protocol`` closes it when the headers are not complete in time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from deploy_mcp.errors import UserError

HEADER_TIMEOUT = 10.0
"""Seconds from a connection's first byte (or the end of its previous response) to the end of the headers."""
SESSION_IDLE_TIMEOUT = 15 * 60.0
"""An MCP session with no request for this long is closed; its client initializes a new one."""
MAX_SESSIONS = 200
"""Open MCP sessions at most; beyond it ``initialize`` gets 503 until one ends or expires."""


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float = HEADER_TIMEOUT
    session_idle_timeout: float = SESSION_IDLE_TIMEOUT
    max_sessions: int = MAX_SESSIONS


ENV_HEADER_TIMEOUT = "DEPLOY_MCP_HTTP_HEADER_TIMEOUT"
ENV_SESSION_IDLE_TIMEOUT = "DEPLOY_MCP_HTTP_SESSION_IDLE_TIMEOUT"
ENV_MAX_SESSIONS = "DEPLOY_MCP_HTTP_MAX_SESSIONS"


def limits_from_env() -> HttpLimits:
    """The defaults, or what the operator set in the environment; a bad value is a UserError naming it."""

    def number(name: str, default: float) -> float:
        raw = os.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{name}={raw!r} is not a positive number; unset it for the default ({default:g})")
        return value

    return HttpLimits(
        header_timeout=number(ENV_HEADER_TIMEOUT, HEADER_TIMEOUT),
        session_idle_timeout=number(ENV_SESSION_IDLE_TIMEOUT, SESSION_IDLE_TIMEOUT),
        max_sessions=max(1, int(number(ENV_MAX_SESSIONS, MAX_SESSIONS))),
    )


def header_timeout_protocol(timeout: float = HEADER_TIMEOUT) -> type[Any]:
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete within ``timeout``."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        _header_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # part of a request's head, or nothing of it yet
                self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is None and not self.transport.is_closing():
                self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.logger.info("closing a connection whose request headers did not finish in %g s", timeout)
                self.transport.close()

    return HeaderTimeoutH11Protocol
