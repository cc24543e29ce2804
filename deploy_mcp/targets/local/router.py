"""The weighted HTTP router of one service and environment.

It picks a version by smooth weighted round-robin (a 95/5 split is exactly 95/5 over every 100 requests, not
just on average), then a ready instance of that version by round-robin, and forwards the request over a pooled
keep-alive connection. Only instances the supervisor enrolled as ready receive requests; an instance being
drained gets no new ones and the router tells the supervisor when its last in-flight request is done.

Failures and retries: an attempt that fails before the instance answered (refused connection, a pooled
connection that was closed, a reset before the first response byte on an idempotent request) is counted as an
error (status 502) against that instance's version and retried on another instance, so a crashing instance
shows up in its version's error rate without failing the user's request. A version with a weight but no ready
instance counts a 503 against itself and the request goes to another weighted version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from deploy_mcp.targets.local import http1
from deploy_mcp.targets.local.metrics import RouterMetrics

log = logging.getLogger(__name__)

BUFFERED_BODY_LIMIT = 1024 * 1024
CHUNKED_BODY_LIMIT = 16 * 1024 * 1024
CONNECT_TIMEOUT = 2.0
RESPONSE_TIMEOUT = 120.0
MAX_ATTEMPTS = 3
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_DONE = object()


@dataclass(eq=False)
class Upstream:
    """One ready instance as the router sees it: where to send, idle connections, requests in flight."""

    instance_id: str
    version: str
    port: int
    host: str = "127.0.0.1"
    idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=deque)
    inflight: int = 0
    enrolled: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def close_idle(self) -> None:
        while self.idle:
            _, writer = self.idle.popleft()
            writer.close()


class _Retry(Exception):
    """An attempt failed before anything reached the client; another instance may serve the request."""


class _Fatal(Exception):
    """An attempt failed after the response began; the client connection must be closed."""


class Router:
    def __init__(self, service: str, environment: str) -> None:
        self.service = service
        self.environment = environment
        self.metrics = RouterMetrics(service, environment)
        self.pools: dict[str, list[Upstream]] = {}
        self.weights: dict[str, int] = {}
        self._weighted: list[tuple[str, int]] = []
        self._current: dict[str, int] = {}
        self._cursor: dict[str, int] = {}
        self._version_header: dict[str, bytes] = {}
        self._servers: list[asyncio.Server] = []
        self._previews: dict[str, asyncio.Server] = {}
        self._clients: set[asyncio.StreamWriter] = set()
        self.gauges: Callable[[], dict[str, dict[str, float]]] = dict

    # -- listening ----------------------------------------------------------------------------------------------

    async def listen(self, port: int, host: str = "127.0.0.1") -> int:
        """Bind the router's public port (0 picks a free one); raises OSError when it is taken."""
        server = await asyncio.start_server(
            lambda r, w: self._client(r, w, None), host, port, reuse_address=True, limit=http1.MAX_HEAD_BYTES
        )
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def open_preview(self, version: str, host: str = "127.0.0.1") -> int:
        """A port that reaches only ``version``, whatever the weights say (pre-promotion checks)."""
        if version in self._previews:
            return self._previews[version].sockets[0].getsockname()[1]
        server = await asyncio.start_server(
            lambda r, w: self._client(r, w, version), host, 0, limit=http1.MAX_HEAD_BYTES
        )
        self._previews[version] = server
        return server.sockets[0].getsockname()[1]

    def close_preview(self, version: str) -> None:
        server = self._previews.pop(version, None)
        if server is not None:
            server.close()

    async def close(self) -> None:
        for server in [*self._servers, *self._previews.values()]:
            server.close()
        for writer in list(self._clients):
            writer.close()
        for pool in self.pools.values():
            for upstream in pool:
                upstream.close_idle()
        self._servers.clear()
        self._previews.clear()

    # -- membership, called by the supervisor --------------------------------------------------------------------

    def enroll(self, upstream: Upstream) -> None:
        pool = self.pools.setdefault(upstream.version, [])
        if upstream not in pool:
            pool.append(upstream)
        upstream.enrolled = True
        upstream.drained.clear()

    def withdraw(self, upstream: Upstream) -> None:
        """No new requests from now on; in-flight ones finish, idle connections close."""
        pool = self.pools.get(upstream.version, [])
        if upstream in pool:
            pool.remove(upstream)
        upstream.enrolled = False
        upstream.close_idle()
        if upstream.inflight == 0:
            upstream.drained.set()

    async def wait_drained(self, upstream: Upstream, timeout: float) -> bool:
        if upstream.inflight == 0:
            return True
        try:
            async with asyncio.timeout(timeout):
                await upstream.drained.wait()
            return True
        except TimeoutError:
            return False

    def ready_count(self, version: str) -> int:
        return len(self.pools.get(version, ()))

    def set_weights(self, weights: dict[str, int]) -> None:
        self.weights = dict(weights)
        self._weighted = [(v, w) for v, w in weights.items() if w > 0]
        self._current = {v: 0 for v, _ in self._weighted}

    def forget(self, version: str) -> None:
        self.pools.pop(version, None)
        self._cursor.pop(version, None)
        self.close_preview(version)

    # -- choosing ------------------------------------------------------------------------------------------------

    def _pick_version(self) -> str | None:
        """Smooth weighted round-robin (nginx's): exact proportions, evenly interleaved."""
        weighted = self._weighted
        if not weighted:
            return None
        if len(weighted) == 1:
            return weighted[0][0]
        current = self._current
        total = 0
        best: str | None = None
        for version, weight in weighted:
            current[version] += weight
            total += weight
            if best is None or current[version] > current[best]:
                best = version
        assert best is not None
        current[best] -= total
        return best

    def _pick_upstream(self, version: str, tried: list[Upstream]) -> Upstream | None:
        pool = self.pools.get(version)
        if not pool:
            return None
        size = len(pool)
        start = self._cursor.get(version, 0)
        for offset in range(size):
            candidate = pool[(start + offset) % size]
            if candidate not in tried:
                self._cursor[version] = (start + offset + 1) % size
                return candidate
        return None

    def _fallback_version(self, exclude: set[str]) -> str | None:
        """Another version that takes traffic and has a ready instance, heaviest first."""
        for version, _ in sorted(self._weighted, key=lambda item: -item[1]):
            if version not in exclude and self.pools.get(version):
                return version
        return None

    # -- serving -------------------------------------------------------------------------------------------------

    async def _client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fixed_version: str | None
    ) -> None:
        self._clients.add(writer)
        try:
            while True:
                head = await http1.read_head(reader)
                if head is None:
                    return
                request = http1.parse_request(head)
                if fixed_version is None and request.method == b"GET" and _is_metrics_path(request.target):
                    writer.write(self._metrics_response())
                    if request.framing.close:
                        return
                    continue
                keep = await self._serve(request, reader, writer, fixed_version)
                if not keep:
                    return
        except http1.ProtocolError as exc:
            with contextlib.suppress(ConnectionError):
                writer.write(http1.simple_response(exc.status, str(exc).encode() + b"\n", close=True))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, _Fatal):
            pass
        except Exception:  # a bug must cost one connection, never the router
            log.exception("router: unexpected error on a client connection")
        finally:
            self._clients.discard(writer)
            writer.close()

    def _metrics_response(self) -> bytes:
        body, content_type = self.metrics.exposition(self.gauges())
        return http1.simple_response(200, body, content_type.encode())

    async def _serve(
        self,
        request: http1.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        fixed_version: str | None,
    ) -> bool:
        head = request.head
        if request.expect_continue:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            head = _drop_header(head, b"expect")
        frame = request.framing
        body: bytes | None = b""
        if frame.chunked:
            body = await http1.read_chunked(reader, CHUNKED_BODY_LIMIT)
        elif frame.length:
            body = await reader.readexactly(frame.length) if frame.length <= BUFFERED_BODY_LIMIT else None

        close_after_refusal = frame.close or body is None  # an unread body would corrupt the connection
        version = fixed_version or self._pick_version()
        if version is None:
            message = b"no version of this service receives traffic\n"
            writer.write(http1.simple_response(503, message, close=close_after_refusal))
            return not close_after_refusal
        tried: list[Upstream] = []
        tried_versions = {version}
        attempts = 0
        while True:
            upstream = self._pick_upstream(version, tried)
            if upstream is None:
                if not tried or tried[-1].version != version:
                    self.metrics.record(version, 503, 0.0)  # the version was owed this request and had no one
                fallback = None if fixed_version else self._fallback_version(tried_versions)
                if fallback is None or attempts >= MAX_ATTEMPTS:
                    message = f"no ready instance of version {version}\n".encode()
                    writer.write(http1.simple_response(503, message, close=close_after_refusal))
                    return not close_after_refusal
                version = fallback
                tried_versions.add(version)
                continue
            tried.append(upstream)
            attempts += 1
            started = time.perf_counter()
            upstream.inflight += 1
            try:
                status, keep = await self._exchange(upstream, request, head, body, reader, writer)
            except _Retry:
                self.metrics.record(version, 502, time.perf_counter() - started)
                if body is None or attempts >= MAX_ATTEMPTS:
                    writer.write(http1.simple_response(502, b"the instance failed to answer\n", close=True))
                    return False
                continue
            except _Fatal:
                self.metrics.record(version, 502, time.perf_counter() - started)
                raise
            except TimeoutError:
                self.metrics.record(version, 504, time.perf_counter() - started)
                writer.write(http1.simple_response(504, b"the instance did not answer in time\n", close=True))
                return False
            finally:
                upstream.inflight -= 1
                if upstream.inflight == 0 and not upstream.enrolled:
                    upstream.drained.set()
            self.metrics.record(version, status, time.perf_counter() - started)
            return keep

    async def _exchange(
        self,
        upstream: Upstream,
        request: http1.Request,
        head: bytes,
        body: bytes | None,
        client_reader: asyncio.StreamReader,
        client: asyncio.StreamWriter,
    ) -> tuple[int, bool]:
        """One attempt against one instance; returns the status and whether the client connection stays open."""
        reused = False
        connection = None
        while upstream.idle:
            candidate = upstream.idle.pop()
            if candidate[0].at_eof() or candidate[1].is_closing():
                candidate[1].close()
                continue
            connection, reused = candidate, True
            break
        if connection is None:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    connection = await asyncio.open_connection(upstream.host, upstream.port, limit=65536)
            except (OSError, TimeoutError):
                raise _Retry from None
        up_reader, up_writer = connection
        retry_safe = reused or request.method in IDEMPOTENT
        try:
            if body is None:  # a large body streams through and cannot be replayed
                up_writer.write(head)
                await http1.relay_length(client_reader, up_writer, request.framing.length or 0)
                retry_safe = False
            else:
                up_writer.write(head + body if body else head)
            async with asyncio.timeout(RESPONSE_TIMEOUT):
                response_head = await http1.read_head(up_reader)
                while response_head is not None and response_head[9:10] == b"1" and response_head[9:12] != b"101":
                    response_head = await http1.read_head(up_reader)  # interim 1xx answers
        except TimeoutError:
            up_writer.close()
            raise
        except (OSError, asyncio.IncompleteReadError, http1.ProtocolError):
            up_writer.close()
            if retry_safe:
                raise _Retry from None
            raise _Fatal from None
        if response_head is None:
            up_writer.close()
            if retry_safe:
                raise _Retry
            raise _Fatal
        try:
            response = http1.parse_response(response_head)
        except http1.ProtocolError:
            up_writer.close()
            raise _Retry from None

        frame = response.framing
        out_head = response_head[:-2] + b"X-Deploy-Version: " + self._header_value(upstream.version) + b"\r\n\r\n"
        no_body = request.method == b"HEAD" or response.status in (204, 304) or response.status < 200
        upstream_keep = not frame.close and not request.framing.close
        client_keep = not frame.close and not request.framing.close
        small = not no_body and frame.length is not None and frame.length <= 65536
        if small:
            try:  # a small body is read whole before the client sees a byte, so a failure can still be retried
                out_head += await up_reader.readexactly(frame.length or 0)
            except (OSError, asyncio.IncompleteReadError):
                up_writer.close()
                if body is not None and request.method in IDEMPOTENT:
                    raise _Retry from None
                raise _Fatal from None
        try:
            if no_body or small:
                client.write(out_head)
            elif frame.length is not None:
                client.write(out_head)
                await http1.relay_length(up_reader, client, frame.length)
            elif frame.chunked:
                client.write(out_head)
                await http1.relay_chunked(up_reader, client)
            else:  # delimited by the upstream closing: the client connection cannot be reused either
                if b"\r\nconnection:" not in response_head.lower():
                    out_head = out_head[:-2] + b"Connection: close\r\n\r\n"
                client.write(out_head)
                await http1.relay_until_eof(up_reader, client)
                upstream_keep = client_keep = False
            if client.transport.get_write_buffer_size() > 65536:
                await client.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            up_writer.close()
            raise _Fatal from None
        if upstream_keep and upstream.enrolled:
            upstream.idle.append(connection)
        else:
            up_writer.close()
        return response.status, client_keep

    def _header_value(self, version: str) -> bytes:
        value = self._version_header.get(version)
        if value is None:
            value = self._version_header[version] = version.encode("latin-1", "replace")
        return value


def _is_metrics_path(target: bytes) -> bool:
    return target.startswith(b"/metrics") and (target in (b"/metrics", b"/metrics/") or target[8:9] == b"?")


def _drop_header(head: bytes, name: bytes) -> bytes:
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() != name]
    return b"\r\n".join(kept) + b"\r\n\r\n"
