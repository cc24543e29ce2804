"""`deploy-mcp serve --http` as a subprocess, for the hostile HTTP tests: its URL, its pid, and raw requests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from local_fixtures import free_port

TOKEN = "hostile-token-0123456789abcdef"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "authorization": f"Bearer {TOKEN}",
}


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[str]

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@contextmanager
def serve(project: Path, **env: str) -> Iterator[Server]:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "DEPLOY_MCP_TOKEN"}
    environment.update(DEPLOY_MCP_CONFIG=str(project / "deploy.toml"), DEPLOY_MCP_TOKEN=TOKEN, **env)
    log = project / "server.log"  # a file, not a pipe: a pipe nobody reads blocks the server once full
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy_mcp", "serve", "--http", "--port", str(port)],
            env=environment,
            cwd=project,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield Server(f"http://127.0.0.1:{port}/mcp", port, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
