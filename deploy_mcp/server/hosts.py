"""Which Host and Origin headers the HTTP server answers: exact host and port, case-insensitively.

Why not the SDK's TransportSecuritySettings: its ``NAME:*`` patterns match by prefix, so ``127.0.0.1:*`` let
``127.0.0.1:18765.evil.com`` and ``127.0.0.1:abc`` through, and its exact entries compare case-sensitively
(``LOCALHOST:8765`` is the same host). Here a header is parsed into a host and a numeric port first, and both
are compared with what the server was told to answer to; anything that does not parse is refused. This is what
stops DNS rebinding: a web page can make a browser send requests to 127.0.0.1, but with its own name as Host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# NAME[:PORT], NAME a DNS name, an IPv4 address or a bracketed IPv6 address; PORT digits only, to the end.
_HOST_HEADER = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9_.-]*[a-z0-9])?)(?::(?P<port>[0-9]{1,5}))?")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>[^/?#]+)")


def parse_host(value: str) -> tuple[str, int | None] | None:
    """(name, port) of a Host header value, lowercase; None when it is not NAME or NAME:PORT exactly."""
    found = _HOST_HEADER.fullmatch(value.strip().lower())
    if found is None:
        return None
    port = int(found["port"]) if found["port"] else None
    if port is not None and not 1 <= port <= 65535:
        return None
    return found["name"], port


@dataclass(frozen=True)
class AllowedHosts:
    """``bound``: names allowed with the server's own port (any numeric port when it is not known);
    ``portless``: names allowed with or without a port (an --allowed-host NAME behind a proxy);
    ``exact``: (name, port) pairs from --allowed-host NAME:PORT."""

    bound: frozenset[str]
    port: int | None
    portless: frozenset[str] = frozenset()
    exact: frozenset[tuple[str, int]] = frozenset()

    def allows(self, value: str | None) -> bool:
        parsed = parse_host(value) if value else None
        if parsed is None:
            return False
        name, port = parsed
        if name in self.portless or (port is not None and (name, port) in self.exact):
            return True
        return name in self.bound and port is not None and (self.port is None or port == self.port)

    def allows_origin(self, value: str | None) -> bool:
        """No Origin is a same-origin or non-browser request; one that is present must name an allowed host."""
        if not value:
            return True
        found = _ORIGIN.fullmatch(value.strip().lower().rstrip("/"))
        if found is None:
            return False
        host = found["host"]
        if ":" not in host.rsplit("]", 1)[-1]:  # no port: the scheme's default
            host += ":443" if found["scheme"] == "https" else ":80"
        return self.allows(host) or self.allows(found["host"])


def allowed_hosts(bound: Iterable[str], port: int | None, names: Iterable[tuple[str, str | None]]) -> AllowedHosts:
    portless, exact = set(), set()
    for name, name_port in names:
        if name_port is None:
            portless.add(name.lower())
        else:
            exact.add((name.lower(), int(name_port)))
    return AllowedHosts(frozenset(b.lower() for b in bound), port, frozenset(portless), frozenset(exact))


class HostCheck:
    """Pure ASGI middleware: 421 for a Host the server does not answer to, 403 for a foreign Origin."""

    def __init__(self, app: Any, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1")
            origin = headers.get(b"origin", b"").decode("latin-1")
            if not self.allowed.allows(host):
                await _refuse(send, 421, "Invalid Host header")
                return
            if not self.allowed.allows_origin(origin):
                await _refuse(send, 403, "Invalid Origin header")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
