"""`deploy-mcp demo`: the SHIP loop a newcomer can watch, driven through a real MCP session.

It copies the example project shipped in the package (deploy_mcp/examples, `examples/` in a clone) into a
temporary project, starts `deploy-mcp serve` as a subprocess and talks to it over
stdio the way an agent would, while a load generator sends traffic to the local platform's router:

1. 1.0.0 rolls out to staging and production;
2. 2.0.0 goes to production as a canary that passes every step and is promoted to 100%;
3. 3.0.0 fails one request in five: the canary catches it and the server rolls back by itself.

The demo plays the user too: when the server asks to confirm a production change, it answers yes and says so.
`--short` plays step 1 in staging only: the same path through the package (example, server, platform, traffic,
ledger, DEPLOY.md) in a fraction of the time, to check an install.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from rich.console import Console

EXAMPLES = Path(__file__).resolve().parent / "examples"
"""Inside the package, so an installed wheel has it (a clone links `examples/` to it)."""
DEMO_ANALYSIS = {"interval": "2s", "bake": "4s", "min_requests": 20}
"""Short enough to watch: every step judged in seconds, on the traffic the demo sends."""
DEMO_HEADER = """\
# Written by `deploy-mcp demo` from the commented examples/deploy.toml, with free router ports, analysis short
# enough to watch, and production not requiring staging (the demo sends 2.0.0 and 3.0.0 straight there).

"""
console = Console()


class DemoSetupError(Exception):
    """The example project lacks something the demo's story needs (someone edited examples/deploy.toml)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _project(folder: Path, examples: Path = EXAMPLES) -> tuple[Path, dict[str, int]]:
    """The example project with free ports and analysis timings short enough to watch.

    The example is parsed and changed key by key, never by matching its text, so an edit to the example cannot
    make an override silently miss: a key the demo needs and does not find stops it, naming the key.
    """
    import tomllib

    import tomli_w

    shutil.copytree(examples, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".deploy", "__pycache__"))
    config = folder / "deploy.toml"
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    _require(data, "services", "hello", "versions", "1.0.0")
    _require(data, "services", "hello", "versions", "2.0.0")
    _require(data, "services", "hello", "versions", "3.0.0", "env", "ERROR_RATE")  # the bad release the canary catches
    ports = {}
    for name in ("staging", "production"):
        environment = _require(data, "services", "hello", "environments", name)
        environment["port"] = ports[name] = _free_port()
        environment["analysis"] = {**environment.get("analysis", {}), **DEMO_ANALYSIS}
    _require(data, "services", "hello", "environments", "production")["requires"] = []
    config.write_text(DEMO_HEADER + tomli_w.dumps(data), encoding="utf-8")
    return config, ports


def _require(data: dict[str, Any], *keys: str) -> Any:
    """The value at ``keys``, or a DemoSetupError naming the first key that is missing."""
    node: Any = data
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            dotted = ".".join(f'"{part}"' if "." in part else part for part in keys[: depth + 1])
            raise DemoSetupError(
                f"examples/deploy.toml has no {dotted}, which the demo needs; reinstall deploy-mcp (or restore the "
                "file from the repository)"
            )
        node = node[key]
    return node


async def _yes(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    console.print(f"  [magenta]server asks the user:[/] {params.message}")
    console.print("  [magenta]demo user:[/] yes")
    return types.ElicitResult(action="accept", content={"confirm": True})


async def _progress(progress: float, total: float | None, message: str | None) -> None:
    if message:
        console.print(f"  [dim]{message}[/]")


async def _ship(
    client: Client, version: str, environment: str, when_paused: Callable[[], None] | None = None
) -> dict[str, Any]:
    console.rule(f"deploy hello {version} to {environment}")
    arguments = {"service": "hello", "version": version, "environment": environment, "wait_seconds": 55}
    result = await client.call_tool("deploy", arguments, progress_callback=_progress)
    if result.is_error:
        raise RuntimeError(result.content[0].text)  # type: ignore[union-attr]
    view = await _settled(client, result.structured_content or {})
    for _ in range(3):  # a first release has no traffic yet, so its analysis cannot judge: the agent resumes
        if view["record"]["status"] != "paused":
            break
        console.print(f"  [yellow]paused:[/] {view['record']['reason']}")
        if when_paused is not None:
            when_paused()
        console.print("  [cyan]agent:[/] traffic is flowing now; resume to analyse again")
        result = await client.call_tool("resume", {"deployment_id": view["record"]["id"]}, progress_callback=_progress)
        view = await _settled(client, result.structured_content or {})
    record = view["record"]
    colour = {"succeeded": "green", "rolled_back": "yellow"}.get(record["status"], "red")
    console.print(
        f"  [bold {colour}]{record['id']}: {record['status']}[/]"
        + (f" - {record['reason']}" if record["reason"] else "")
    )
    return view


async def _settled(client: Client, view: dict[str, Any]) -> dict[str, Any]:
    """Poll deployment_status until the deployment succeeds, pauses or ends, as an agent would."""
    while view["record"]["status"] in ("pending", "in_progress"):
        await anyio.sleep(0.5)
        status = await client.call_tool("deployment_status", {"deployment_id": view["record"]["id"]})
        view = status.structured_content or {}
    return view


async def _write_deploy_md(client: Client) -> None:
    """The skill's one required deliverable, written by the server from what just happened (the ledger included)."""
    console.rule("write DEPLOY.md")
    result = await client.call_tool("generate_deploy_md", {"write": True})
    if result.is_error:
        raise RuntimeError(result.content[0].text)  # type: ignore[union-attr]
    document = result.structured_content or {}
    console.print(f"  wrote {document['path']}: {', '.join(document['sections'])}")
    from rich.markup import escape

    lines = document["content"].splitlines()
    start = lines.index("## Rollback")
    production = lines.index("### Roll back hello in production", start)
    excerpt = [lines[start], *[line for line in lines[production : production + 8] if line.strip()][:3]]
    for line in excerpt:
        console.print(f"  [dim]{escape(line)}[/]", highlight=False)


async def _production(client: Client, port: int, loads: list[Any]) -> None:
    """Steps 1 to 3 in production: the release staging just passed, a good canary, and a bad one."""
    from deploy_mcp.targets.local.loadgen import BackgroundLoad

    production = f"http://127.0.0.1:{port}/"

    def send_traffic() -> None:
        if len(loads) < 2:
            loads.append(BackgroundLoad(production, rate=200).start())
            console.print(f"  [dim]sending 200 requests/s to production ({production})[/]")

    await _ship(client, "1.0.0", "production", when_paused=send_traffic)
    send_traffic()
    await _ship(client, "2.0.0", "production")
    await _ship(client, "3.0.0", "production")


async def _run(config: Path, ports: dict[str, int], short: bool = False) -> None:
    from deploy_mcp.core.records import DeploymentRecord
    from deploy_mcp.server.render import history_table
    from deploy_mcp.targets.local.loadgen import BackgroundLoad

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "deploy_mcp", "serve"],
        env={"DEPLOY_MCP_CONFIG": str(config)},
        cwd=str(config.parent),
    )
    started = time.monotonic()
    async with Client(server, elicitation_callback=_yes) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        console.print(f"connected to deploy-mcp over stdio: {len(tools)} tools ({', '.join(tools)})")
        loads = []
        try:
            await _ship(
                client,
                "1.0.0",
                "staging",
                when_paused=lambda: loads.append(
                    BackgroundLoad(f"http://127.0.0.1:{ports['staging']}/", rate=50).start()
                ),
            )
            if not short:
                await _production(client, ports["production"], loads)
        finally:
            for load in loads:
                result = load.stop()
                console.print(f"  [dim]load on {load.url}: {result.requests} requests, {result.failures} failed[/]")
        history = await client.call_tool("deployment_history", {"service": "hello"})
        records = [DeploymentRecord.model_validate(r) for r in (history.structured_content or {})["records"]]
        console.print(history_table(records))
        await _write_deploy_md(client)
    console.print(f"demo finished in {time.monotonic() - started:.0f} s; the project was {config.parent}")


def run_demo(keep: bool = False, short: bool = False) -> int:
    folder = Path(tempfile.mkdtemp(prefix="deploy-mcp-demo-"))
    config: Path | None = None
    try:
        config, ports = _project(folder)
        anyio.run(_run, config, ports, short)
    except Exception as exc:  # the demo reports what went wrong in one line, like every command
        cause: BaseException = exc
        while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
            cause = cause.exceptions[0]
        console.print(f"[red]demo stopped: {cause}[/]")
        return 1
    finally:
        if not keep:
            if config is not None:
                from deploy_mcp.config.loader import load_project
                from deploy_mcp.targets.local import cli

                console.print(cli.stop(load_project(config), "hello"))
            shutil.rmtree(folder, ignore_errors=True)
    return 0
