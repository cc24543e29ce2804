"""Review of issue 12's token file: revoking must not fail open.

The server reads the token file again when it changes, so removing an entry revokes that token without a restart.
But when the file went away (an administrator deleting it in an incident, to lock everyone out) or no longer
parsed (a revoking edit with a typo), the server kept every identity it had read before: every token, the revoked
ones included, still got in, and their approvals still counted. Now a missing or unreadable token file lets nobody
in until it is readable again, and the server says why on its log.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from shell_agent import agent_env
from test_identities_http import add_token


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str], Path]]:
    token_file = tmp_path / "tokens.toml"
    tokens = {"alice": add_token(token_file, "alice", "releaser"), "ci": add_token(token_file, "ci", "deployer")}
    project = tmp_path / "p"
    project.mkdir()
    (project / "deploy.toml").write_text("[services.web]\ncommand = ['x']\n", encoding="utf-8")
    port = free_port()
    log = tmp_path / "server.log"
    env = agent_env({"DEPLOY_MCP_CONFIG": str(project / "deploy.toml"), "DEPLOY_MCP_TOKEN_FILE": str(token_file)})
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy_mcp", "serve", "--http", "--port", str(port)],
            cwd=project,
            env=env,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", token_file, tokens, log
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def status(url: str, token: str) -> int:
    return httpx.post(url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


@pytest.mark.parametrize("how", ["deleted", "garbled"])
def test_a_token_file_that_is_gone_or_garbled_lets_nobody_in(server, how: str) -> None:
    url, token_file, tokens, log = server
    assert status(url, tokens["alice"]) != 401  # known: past authentication (the empty body is a bad request)
    text = token_file.read_text(encoding="utf-8")
    if how == "deleted":
        token_file.unlink()
    else:  # an edit revoking "ci" that left a typo behind
        token_file.write_text(text.replace('name = "ci"', 'name = "ci'), encoding="utf-8")
    assert status(url, tokens["ci"]) == 401, f"a token still got in after the token file was {how}"
    assert status(url, tokens["alice"]) == 401
    assert str(token_file) in log.read_text()  # the server says which file it cannot read

    token_file.write_text(text, encoding="utf-8")  # readable again: the tokens work again, no restart
    assert status(url, tokens["alice"]) != 401
