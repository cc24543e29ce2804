"""Just enough HTTP/1.1 over asyncio streams for a proxy, a control API, health probes and a load generator.

A general HTTP library parses every header into objects; a proxy only needs to know where a message ends and
whether the connection stays open. Looking those few fields up in the lower-cased head with ``bytes.find``
keeps the router's cost per request in the tens of microseconds, which is what lets it add well under a
millisecond to a request.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024
CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.x; ``status`` is what to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def header(lower_head: bytes, name: bytes) -> bytes | None:
    """The value of one header, looked up in a lower-cased head (``name`` lower-case, without the colon)."""
    start = lower_head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = lower_head.find(CRLF, start)
    return lower_head[start:end].strip()


@dataclass(slots=True)
class Framing:
    """How a message's body is delimited and whether its connection stays open afterwards."""

    length: int | None
    chunked: bool
    close: bool


def framing(head: bytes, http10: bool) -> Framing:
    lower = head.lower()
    encoding = header(lower, b"transfer-encoding")
    chunked = encoding is not None and encoding.endswith(b"chunked")
    length: int | None = None
    if not chunked:
        raw = header(lower, b"content-length")
        if raw is not None:
            try:
                length = int(raw)
            except ValueError:
                raise ProtocolError(400, "Content-Length is not a number") from None
            if length < 0:
                raise ProtocolError(400, "Content-Length is negative")
    connection = header(lower, b"connection")
    close = b"close" in connection if connection else False
    if http10 and not (connection and b"keep-alive" in connection):
        close = True
    return Framing(length, chunked, close)


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes
    head: bytes
    framing: Framing
    expect_continue: bool


def parse_request(head: bytes) -> Request:
    line_end = head.find(CRLF)
    parts = head[:line_end].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise ProtocolError(400, "not an HTTP/1.x request line")
    method, target, version = parts
    frame = framing(head, version == b"HTTP/1.0")
    expect = header(head.lower(), b"expect")
    return Request(method, target, head, frame, expect == b"100-continue")


@dataclass(slots=True)
class Response:
    status: int
    head: bytes
    framing: Framing


def parse_response(head: bytes) -> Response:
    if len(head) < 12 or not head.startswith(b"HTTP/1."):
        raise ProtocolError(502, "the upstream did not answer with HTTP/1.x")
    try:
        status = int(head[9:12])
    except ValueError:
        raise ProtocolError(502, "the upstream sent a malformed status line") from None
    return Response(status, head, framing(head, head.startswith(b"HTTP/1.0")))


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next message head, or None at a clean end of stream between messages."""
    try:
        return await reader.readuntil(HEAD_END)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProtocolError(400, "the connection closed in the middle of a message head") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(431, f"message head larger than {MAX_HEAD_BYTES} bytes") from None


async def read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    """A whole chunked body, framing included, so it can be forwarded (and retried) as it came."""
    parts: list[bytes] = []
    size_total = 0
    while True:
        line = await reader.readuntil(CRLF)
        parts.append(line)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(400, "malformed chunk size") from None
        if size == 0:
            while True:  # trailers end with an empty line
                trailer = await reader.readuntil(CRLF)
                parts.append(trailer)
                if trailer == CRLF:
                    return b"".join(parts)
        size_total += size
        if size_total > limit:
            raise ProtocolError(413, f"chunked body larger than {limit} bytes")
        parts.append(await reader.readexactly(size + 2))


async def relay_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        line = await reader.readuntil(CRLF)
        writer.write(line)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:
                trailer = await reader.readuntil(CRLF)
                writer.write(trailer)
                if trailer == CRLF:
                    await writer.drain()
                    return
        writer.write(await reader.readexactly(size + 2))
        await writer.drain()


async def relay_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int) -> None:
    remaining = length
    while remaining > 0:
        chunk = await reader.read(min(remaining, 256 * 1024))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        writer.write(chunk)
        remaining -= len(chunk)
        await writer.drain()


async def relay_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(256 * 1024):
        writer.write(chunk)
        await writer.drain()


def simple_response(
    status: int,
    body: bytes,
    content_type: bytes = b"text/plain; charset=utf-8",
    close: bool = False,
    extra: bytes = b"",
) -> bytes:
    reason = REASONS.get(status, "Status").encode()
    connection = b"Connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n"
        % (status, reason, content_type, len(body), connection, extra)
    ) + body


def json_response(status: int, payload: object, close: bool = True) -> bytes:
    body = json.dumps(payload).encode()
    return simple_response(status, body, b"application/json", close=close)


async def read_body(reader: asyncio.StreamReader, frame: Framing, limit: int) -> bytes:
    """A request or response body in full (for small control and probe messages)."""
    if frame.chunked:
        raw = await read_chunked(reader, limit)
        return dechunk(raw)
    if frame.length is not None:
        if frame.length > limit:
            raise ProtocolError(413, f"body larger than {limit} bytes")
        return await reader.readexactly(frame.length)
    return b""


def dechunk(raw: bytes) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        end = raw.index(CRLF, pos)
        size = int(raw[pos:end].split(b";", 1)[0].strip(), 16)
        if size == 0:
            return b"".join(out)
        out.append(raw[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2
