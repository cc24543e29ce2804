"""Issue 9 item 6: the Host header is matched exactly on host and port, case-insensitively (DNS rebinding)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hostile_http import HEADERS, INITIALIZE, serve

from deploy_mcp.server.hosts import AllowedHosts, parse_host


def test_hosts_that_only_start_like_the_server_are_refused(project_dir: Path) -> None:
    with serve(project_dir) as server:

        def status(host: str, origin: str | None = None) -> int:
            headers = {**HEADERS, "host": host, **({"origin": origin} if origin else {})}
            return httpx.post(server.url, json=INITIALIZE, headers=headers, timeout=10).status_code

        port = server.port
        assert status(f"127.0.0.1:{port}.evil.com") == 421  # a prefix match let this through
        assert status("127.0.0.1:abc") == 421
        assert status(f"127.0.0.1:{port + 1}") == 421  # another port: another server
        assert status(f"127.0.0.1:{port}@evil.com") == 421
        assert status("127.0.0.1") == 421  # the server's port is part of its name
        assert status(f"localhost.evil.com:{port}") == 421
        assert status(f"127.0.0.1:{port}", origin=f"http://127.0.0.1:{port}.evil.com") == 403
        assert status(f"127.0.0.1:{port}", origin="http://127.0.0.1:abc") == 403
        assert status(f"127.0.0.1:{port}") == 200
        assert status(f"LOCALHOST:{port}", origin=f"HTTP://LocalHost:{port}") == 200  # case does not matter


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("127.0.0.1:8765", True),
        ("LocalHost:8765", True),
        ("deploy.internal", True),  # --allowed-host NAME: behind a proxy, with or without a port
        ("deploy.internal:443", True),
        ("api.example:8443", True),  # --allowed-host NAME:PORT, that port only
        ("api.example:8444", False),
        ("api.example", False),
        ("127.0.0.1:8765.evil.com", False),
        ("127.0.0.1:abc", False),
        ("127.0.0.1:99999", False),
        ("127.0.0.1: 8765", False),
        ("", False),
    ],
)
def test_host_matching(header: str, allowed: bool) -> None:
    hosts = AllowedHosts(
        bound=frozenset({"127.0.0.1", "localhost"}),
        port=8765,
        portless=frozenset({"deploy.internal"}),
        exact=frozenset({("api.example", 8443)}),
    )
    assert hosts.allows(header) is allowed
    assert parse_host("[::1]:8765") == ("[::1]", 8765)
