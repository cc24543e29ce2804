"""Issue 9 item 6: one client cannot hold the HTTP server: a head that never ends is cut off, sessions expire and
their number is capped, so 2,000 `initialize` calls leave memory bounded."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
from hostile_http import HEADERS, INITIALIZE, serve

from deploy_mcp.server.http_limits import MAX_SESSIONS


def _closed_within(sock: socket.socket, seconds: float, trickle: bool) -> float | None:
    """Seconds until the server closed the connection (None if it did not), sending one byte a second if asked."""
    started = time.monotonic()
    sock.settimeout(1.0)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        if trickle:
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
    return None


def test_a_request_whose_headers_never_finish_is_closed(project_dir: Path) -> None:
    with serve(project_dir, DEPLOY_MCP_HTTP_HEADER_TIMEOUT="2") as server:
        silent = socket.create_connection(("127.0.0.1", server.port))
        silent.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode())
        # the server answers others meanwhile
        assert httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=10).status_code == 200
        silent_after = _closed_within(silent, 60, trickle=False)
        trickling = socket.create_connection(("127.0.0.1", server.port))
        trickling.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Slow: ".encode())
        trickling_after = _closed_within(trickling, 60, trickle=True)
        print(f"half-sent head closed after {silent_after} s, a byte a second after {trickling_after} s (limit 2 s)")
        assert silent_after is not None, "a half-sent head kept its connection"
        assert trickling_after is not None, "a byte a second kept the connection"
        silent.close()
        trickling.close()
        # a whole request is still served
        assert httpx.post(server.url, json=INITIALIZE, headers=HEADERS, timeout=10).status_code == 200


def test_idle_sessions_expire_and_their_number_is_capped(project_dir: Path) -> None:
    env = {"DEPLOY_MCP_HTTP_SESSION_IDLE_TIMEOUT": "2", "DEPLOY_MCP_HTTP_MAX_SESSIONS": "20"}
    with serve(project_dir, **env) as server, httpx.Client(timeout=10) as client:
        opened = [client.post(server.url, json=INITIALIZE, headers=HEADERS) for _ in range(20)]
        assert all(r.status_code == 200 for r in opened)
        assert client.post(server.url, json=INITIALIZE, headers=HEADERS).status_code == 503  # the cap
        session = opened[0].headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        for wait in (3, 6, 12):  # idle for 2 s: expired (each ping is activity, so wait longer each time)
            time.sleep(wait)
            if client.post(server.url, json=ping, headers={**HEADERS, "mcp-session-id": session}).status_code == 404:
                break
        else:
            raise AssertionError("an idle session never expired")
        assert client.post(server.url, json=INITIALIZE, headers=HEADERS).status_code == 200


def test_two_thousand_initialize_calls_leave_memory_bounded(project_dir: Path) -> None:
    """With the defaults. Prints the numbers for the record; the bound asserted is loose (a loaded machine)."""
    with serve(project_dir) as server, httpx.Client(timeout=30) as client:
        for _ in range(20):  # warm up: imports, first sessions
            client.post(server.url, json=INITIALIZE, headers=HEADERS)
        before = server.rss_kib()
        codes: dict[int, int] = {}
        for _ in range(2000):
            code = client.post(server.url, json=INITIALIZE, headers=HEADERS).status_code
            codes[code] = codes.get(code, 0) + 1
        after = server.rss_kib()
        print(f"RSS before {before / 1024:.1f} MiB, after 2,000 initialize {after / 1024:.1f} MiB; answers {codes}")
        assert codes.get(200, 0) <= MAX_SESSIONS and codes.get(503, 0) >= 2000 - MAX_SESSIONS
        assert after - before < 60 * 1024, f"grew {(after - before) / 1024:.1f} MiB"
