"""Issue 9 item 2: a deployed service gets a minimal environment, not deploy-mcp's (tokens, cloud keys).

The attacker is the code being shipped: it runs as the same user and reads its own environment and its parent's
(/proc/PPID/environ). Both the instance and the supervisor above it must hold none of deploy-mcp's secrets.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from hostile_project import cli, config, spy_project
from local_fixtures import free_port

from deploy_mcp.config.loader import load_project
from deploy_mcp.targets.local.loadgen import BackgroundLoad
from deploy_mcp.targets.local.state import Paths, read_state

__all__ = ["spy_project"]  # the fixture, imported so pytest finds it

SECRETS = {
    "DEPLOY_MCP_TOKEN": "tok-0123456789abcdef0123",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-do-not-leak",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "PGPASSWORD": "pg-secret-do-not-leak",
}


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def test_a_deployed_service_sees_only_the_minimal_environment_and_what_it_lists(spy_project: Path) -> None:
    port = int((spy_project / "port").read_text())
    extra = 'inherit_env = ["SPY_ALLOWED"]\nenv = { FROM_TOML = "set-in-deploy-toml" }'
    (spy_project / "deploy.toml").write_text(config(port, extra=extra), encoding="utf-8")
    given = {**SECRETS, "SPY_ALLOWED": "listed", "SPY_UNLISTED": "not listed", "TZ": "Europe/Paris"}
    with BackgroundLoad(f"http://127.0.0.1:{port}/", rate=50, concurrency=2):
        deployed = cli("deploy", "spy", "1.0.0", "--environment", "staging", cwd=spy_project, env=given)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/env", timeout=10) as answer:
        seen = json.loads(answer.read())
    for name in (*SECRETS, "SPY_UNLISTED"):
        assert name not in seen, f"{name} reached the service"
    assert seen["SPY_ALLOWED"] == "listed"  # inherit_env
    assert seen["FROM_TOML"] == "set-in-deploy-toml"  # env in deploy.toml
    assert seen["TZ"] == "Europe/Paris" and seen["PATH"] and seen["HOME"]  # the base four (LANG when set)
    assert seen["PORT"] and seen["VERSION"] == "1.0.0" and seen["SERVICE"] == "spy"
    assert set(seen) <= {
        *("PATH", "HOME", "LANG", "TZ", "SPY_ALLOWED", "FROM_TOML", "PORT", "VERSION", "SERVICE"),
        *("PYTHONUNBUFFERED", "DEPLOY_MCP_LOCAL", "LC_CTYPE"),  # LC_CTYPE: Python's own C-locale coercion
    }, sorted(seen)

    # the supervisor above it (the instance's parent) holds none of them either
    state = read_state(Paths(load_project(spy_project / "deploy.toml").state_dir, "spy", "staging"))
    assert state is not None
    supervisor = _environ_of(state["supervisor"]["pid"])
    assert not set(SECRETS) & set(supervisor) and "SPY_ALLOWED" not in supervisor
    # the inherited value travels to the supervisor in memory, never into its state file
    assert "listed" not in json.dumps(state)


def test_inherit_env_takes_names_only(spy_project: Path) -> None:
    port = free_port()
    (spy_project / "deploy.toml").write_text(config(port, extra='inherit_env = ["AWS_KEY=abc"]'), encoding="utf-8")
    refused = cli("deploy", "spy", "1.0.0", "--environment", "staging", cwd=spy_project)
    assert refused.returncode != 0
    assert "inherit_env" in refused.stderr and "not an environment variable name" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
