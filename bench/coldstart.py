"""Cold start: spawn -> initialize -> tools/list, deploy-mcp against a bare MCPServer with one tool.

Both are measured alternately in one run (this machine is noisy) and the ratio of the medians is printed. The
target is deploy-mcp within 1.15x of the bare server: heavy modules (kubernetes, boto3, jinja2) must be imported
only when a tool needs them.

    python bench/coldstart.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BARE_SERVER = textwrap.dedent(
    """
    from mcp.server import MCPServer

    server = MCPServer("bare")

    @server.tool()
    def echo(text: str) -> str:
        return text

    server.run("stdio")
    """
)

MESSAGES = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


def time_to_tools(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds from spawn to the tools/list answer, and how many tools it listed."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in MESSAGES))
    proc.stdin.flush()
    try:
        for line in proc.stdout:
            reply = json.loads(line)
            if reply.get("id") == 2:
                elapsed = time.perf_counter() - started
                return elapsed, len(reply["result"]["tools"])
        raise RuntimeError(f"{command[-1]} closed stdout before answering tools/list")
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each server (at least 5)")
    args = parser.parse_args()
    runs = max(args.runs, 5)
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / "bare_server.py"
        bare.write_text(BARE_SERVER)
        config = Path(folder) / "deploy.toml"
        config.write_text('[services.web]\ncommand = ["python", "-m", "http.server", "{port}"]\n')
        env = {**os.environ, "DEPLOY_MCP_CONFIG": str(config)}
        commands = {
            "bare MCPServer": [sys.executable, str(bare)],
            "deploy-mcp serve": [sys.executable, "-m", "deploy_mcp", "serve"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        tools: dict[str, int] = {}
        for command in commands.values():  # warm the file cache once, untimed
            time_to_tools(command, env)
        for _ in range(runs):
            for name, command in commands.items():
                seconds, tools[name] = time_to_tools(command, env)
                samples[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name in samples:
        print(f"{name:18} median {medians[name] * 1000:7.1f} ms  ({runs} runs, {tools[name]} tools)")
    ratio = medians["deploy-mcp serve"] / medians["bare MCPServer"]
    print(f"ratio deploy-mcp / bare: {ratio:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
