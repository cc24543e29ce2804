"""A small HTTP load generator: keep-alive connections, a fixed rate or as fast as possible.

Used by the tests (steady traffic during a rollout: every failed request counts) and by bench/router.py
(throughput and latency through the router against straight to an instance). It records every request's
status, latency and serving version (the router's X-Deploy-Version header), so a test can say "zero failures
and both versions answered" and a benchmark can print percentiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from deploy_mcp.targets.local import http1


@dataclass
class LoadResult:
    duration: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failures_at: list[tuple[float, str]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.exceptions.values())

    @property
    def failures(self) -> int:
        """Requests a user would call failed: no answer, or an answer outside 2xx/3xx/4xx."""
        return sum(self.exceptions.values()) + sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def throughput(self) -> float:
        return self.requests / self.duration if self.duration else 0.0

    def percentile_ms(self, quantile: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, int(quantile * len(ordered) + 0.5) - 1))
        return ordered[index] * 1000.0

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.duration:.1f} s ({self.throughput:.0f}/s), {self.failures} failed, "
            f"p50 {self.percentile_ms(0.5):.2f} ms, p99 {self.percentile_ms(0.99):.2f} ms, "
            f"statuses {dict(self.statuses)}, versions {dict(self.versions)}"
            + (f", exceptions {dict(self.exceptions)}" if self.exceptions else "")
        )


async def run_load(
    url: str,
    *,
    concurrency: int = 8,
    duration: float | None = 5.0,
    rate: float | None = None,
    stop: asyncio.Event | None = None,
    timeout: float = 10.0,
) -> LoadResult:
    """Send GET requests to ``url`` over ``concurrency`` keep-alive connections.

    With ``rate`` (requests per second, all connections together) the load is open-loop at that pace; without,
    each connection sends its next request as soon as the last one is answered. Runs for ``duration`` seconds,
    or until ``stop`` is set when duration is None.
    """
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: deploy-mcp-load\r\n\r\n".encode()
    result = LoadResult()
    stop = stop or asyncio.Event()
    started = time.perf_counter()
    deadline = started + duration if duration is not None else None
    interval = concurrency / rate if rate else 0.0

    def finished() -> bool:
        return stop.is_set() or (deadline is not None and time.perf_counter() >= deadline)

    async def worker(offset: float) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        next_send = started + offset
        while not finished():
            if interval:
                delay = next_send - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if finished():
                        break
                next_send = max(next_send + interval, time.perf_counter() - interval)
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    if writer is None or writer.is_closing():
                        reader, writer = await asyncio.open_connection(host, port)
                    assert reader is not None
                    writer.write(request)
                    head = await http1.read_head(reader)
                    if head is None:
                        raise ConnectionResetError("connection closed before an answer")
                    response = http1.parse_response(head)
                    await http1.read_body(reader, response.framing, 64 * 1024 * 1024)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, http1.ProtocolError) as exc:
                result.exceptions[type(exc).__name__] += 1
                result.failures_at.append((sent - started, type(exc).__name__))
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            elapsed = time.perf_counter() - sent
            result.statuses[response.status] += 1
            result.latencies.append(elapsed)
            version = http1.header(head.lower(), b"x-deploy-version")
            if version:
                result.versions[version.decode()] += 1
            if response.status >= 500:
                result.failures_at.append((sent - started, str(response.status)))
            if response.framing.close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker(i * interval / concurrency) for i in range(concurrency)))
    result.duration = time.perf_counter() - started
    return result


class BackgroundLoad:
    """Steady load from a thread of its own while the test drives a rollout; ``stop()`` returns the result."""

    def __init__(self, url: str, *, rate: float = 250.0, concurrency: int = 8) -> None:
        self.url = url
        self.rate = rate
        self.concurrency = concurrency
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._result: LoadResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="load", daemon=True)
        self._started = threading.Event()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._result = self._loop.run_until_complete(self._run())
        except BaseException as exc:  # surfaced by stop()
            self._error = exc
        finally:
            self._started.set()
            self._loop.close()

    async def _run(self) -> LoadResult:
        self._stop = asyncio.Event()
        self._started.set()
        return await run_load(self.url, concurrency=self.concurrency, duration=None, rate=self.rate, stop=self._stop)

    def start(self) -> BackgroundLoad:
        self._thread.start()
        self._started.wait(5.0)
        return self

    def stop(self) -> LoadResult:
        if self._stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30.0)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def __enter__(self) -> BackgroundLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.stop()
