"""Review: `deploy-mcp approve --server` sent the releaser's bearer token over plain http to any host.

On the way to a team server across the network, whoever listens (a network attacker, the case the Security page
names) got a releaser token: production authority. The command now sends a token only over https, or plain http
to a loopback address, and says how to fix the URL; nothing reaches the network before that.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from conftest import require_component
from shell_agent import agent_shell, hello_project


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (where a team server on the network would listen)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the interface a route would use
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_a_releaser_token_never_crosses_the_network_in_clear(tmp_path) -> None:
    address = non_loopback_address()
    require_component("a non-loopback network address", address is not None, "run on a machine with a network")
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen(5)
    listener.settimeout(0.5)
    received: list[bytes] = []

    def accept() -> None:
        try:
            connection, _ = listener.accept()
        except (TimeoutError, OSError):
            return
        connection.settimeout(2)
        with contextlib.suppress(OSError):
            received.append(connection.recv(65536))
        connection.close()

    server = f"http://{address}:{listener.getsockname()[1]}"
    secret = "dmcp_releaser-token-that-must-not-travel"
    try:
        with hello_project(tmp_path / "p") as project:
            catcher = threading.Thread(target=lambda: [accept() for _ in range(20)], daemon=True)
            catcher.start()
            result = agent_shell(
                f"deploy-mcp approve CHG-T --service hello --environment production --server {server}",
                project,
                {"DEPLOY_MCP_TOKEN": secret},
            )
            catcher.join(15)
    finally:
        listener.close()
    assert not any(secret.encode() in data for data in received), "the releaser token went over plain http"
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--server" in result.stderr and "https" in result.stderr
