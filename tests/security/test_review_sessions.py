"""Review of the Security page's claim that a session is bound to the identity that opened it.

The page said so on the strength of the MCP SDK alone; this is the test it names. A deployer that learns a
releaser's session id (from a log, a proxy, a shared terminal) sends its own token with that id: the server does
not serve it in the releaser's session, so it cannot borrow the releaser's role or the releaser's client.
"""

from __future__ import annotations

import httpx
from test_identities_http import TeamServer, team

__all__ = ["team"]  # the fixture, imported so pytest finds it

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "deployment_history", "arguments": {"service": "hello"}},
}


def post(team: TeamServer, who: str, body: dict[str, object], session: str | None = None) -> httpx.Response:
    headers = HEADERS | {"authorization": f"Bearer {team.tokens[who]}"}
    if session:
        headers["mcp-session-id"] = session
    return httpx.post(team.url, json=body, headers=headers, timeout=20)


def test_a_session_opened_by_a_releaser_does_not_serve_a_deployers_token(team: TeamServer) -> None:
    opened = post(team, "alice", INITIALIZE)
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert post(team, "alice", initialized, session).status_code == 202
    assert post(team, "alice", CALL, session).status_code == 200  # the owner is served

    borrowed = post(team, "ci-agent", CALL, session)
    assert borrowed.status_code in (403, 404), borrowed.text
    assert "deployment_history" not in borrowed.text and '"result"' not in borrowed.text
