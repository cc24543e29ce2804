"""What an agent reads: the SHIP loop on the example project through stdio, and the size of `tools/list`.

An agent pays for every character a tool result puts in its context, on every turn. This runs the loop an agent
runs for one release on staging (plan_deployment, preflight, deploy with wait, deployment_status, validate,
deployment_history) against `deploy-mcp serve` over stdio, with real traffic on the local platform, and prints
the characters of each result's text content and of the `tools/list` answer. Goals: the six results at most
16,000 characters in all (about 4k tokens) and `tools/list` at most 40 KB.

With ``--baseline REV`` (default: the commit where this branch left main, when its package differs from this
checkout's) the same loop runs in the same run against that revision's package, exported with `git archive`, and
both columns are printed side by side.

    python bench/agent_tokens.py [--baseline main | --baseline none] [--version 3.0.0] [--show]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
RESULTS_GOAL = 16_000
LISTING_GOAL = 40_000
SETUP_VERSION = "1.0.0"
"""Shipped first and not measured: the loop then ships a release over a version that serves, as most do."""
VERSION = "2.0.0"
"""The release the loop ships: a good one. ``--version 3.0.0`` ships the bad one, which the analysis rolls back."""
ENVIRONMENT = "staging"


@dataclass
class Sizes:
    label: str
    results: dict[str, int] = field(default_factory=dict)
    structured: dict[str, int] = field(default_factory=dict)
    listing: int = 0
    texts: dict[str, str] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)
    status: str = ""

    @property
    def total(self) -> int:
        return sum(self.results.values())


def _text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def _wire_size(value: Any) -> int:
    """Characters as JSON on the wire (compact, as the SDK sends it)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


async def _settle(client: Client, result: Any) -> dict[str, Any]:
    view = result.structured_content or {}
    for _ in range(3):  # a first release may pause for want of traffic while the load starts: resume it
        while view["record"]["status"] in ("pending", "in_progress"):
            await anyio.sleep(0.5)
            view = (
                await client.call_tool("deployment_status", {"deployment_id": view["record"]["id"]})
            ).structured_content
        if view["record"]["status"] != "paused":
            break
        view = (await client.call_tool("resume", {"deployment_id": view["record"]["id"]})).structured_content
    return view


async def _loop(label: str, source: Path, config: Path, version: str) -> Sizes:
    env = {"DEPLOY_MCP_CONFIG": str(config), "PYTHONPATH": str(source)}
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "deploy_mcp", "serve"], env=env, cwd=str(config.parent)
    )
    sizes = Sizes(label)
    async with Client(server) as client:
        listing = await client.list_tools()
        sizes.listing = _wire_size(listing.model_dump(mode="json", by_alias=True, exclude_none=True))
        setup = {"service": "hello", "version": SETUP_VERSION, "environment": ENVIRONMENT, "wait_seconds": 60}
        await _settle(client, await client.call_tool("deploy", setup))

        subject = {"service": "hello", "version": version, "environment": ENVIRONMENT}
        calls: list[tuple[str, dict[str, Any]]] = [
            ("plan_deployment", subject),
            ("preflight", subject),
            ("deploy", {**subject, "wait_seconds": 90}),
        ]
        deployment_id = ""
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            if result.is_error:
                raise RuntimeError(f"{label}: {name} failed: {_text_of(result)}")
            _record(sizes, name, result)
            if name == "deploy":
                deployment_id = result.structured_content["record"]["id"]
        settled = await _settle(client, await client.call_tool("deployment_status", {"deployment_id": deployment_id}))
        sizes.status = settled["record"]["status"]
        for name, arguments in [
            ("deployment_status", {"deployment_id": deployment_id}),
            ("validate", {"service": "hello", "environment": ENVIRONMENT, "deployment_id": deployment_id}),
            ("deployment_history", {"service": "hello", "environment": ENVIRONMENT}),
        ]:
            result = await client.call_tool(name, arguments)
            if result.is_error:
                raise RuntimeError(f"{label}: {name} failed: {_text_of(result)}")
            _record(sizes, name, result)
    return sizes


def _record(sizes: Sizes, name: str, result: Any) -> None:
    sizes.results[name] = len(_text_of(result))
    sizes.structured[name] = _wire_size(result.structured_content)
    sizes.texts[name] = _text_of(result)
    sizes.records[name] = result.structured_content


def _measure(label: str, source: Path, version: str) -> Sizes:
    from deploy_mcp.config.loader import load_project
    from deploy_mcp.demo import _project
    from deploy_mcp.targets.local import cli
    from deploy_mcp.targets.local.loadgen import BackgroundLoad

    with tempfile.TemporaryDirectory(prefix="agent-tokens-") as folder:
        config, ports = _project(Path(folder))
        load = BackgroundLoad(f"http://127.0.0.1:{ports[ENVIRONMENT]}/", rate=50).start()
        try:
            return anyio.run(_loop, label, source, config, version)
        finally:
            load.stop()
            cli.stop(load_project(config), "hello")


def _export(revision: str, into: Path) -> Path | None:
    """The package as it is at ``revision``, or None when git cannot give it."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "deploy_mcp"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _merge_base() -> str | None:
    """The commit this branch left main at: the code before this branch's changes."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        return None
    return found.stdout.strip() or None


def _same_tree(revision: str) -> bool:
    """Whether the package at ``revision`` is what this checkout holds (then there is nothing to compare)."""
    diff = subprocess.run(
        ["git", "-C", str(ROOT), "diff", "--quiet", revision, "--", "deploy_mcp"], capture_output=True, check=False
    )
    return diff.returncode == 0


def _report(columns: list[Sizes]) -> None:
    names = list(columns[-1].results)
    width = max(len(name) for name in [*names, "tools/list (bytes)"]) + 2
    print(f"{'result (text characters)':<{width}}" + "".join(f"{c.label:>14}" for c in columns))
    for name in names:
        print(f"{name:<{width}}" + "".join(f"{c.results.get(name, 0):>14,}" for c in columns))
    print(f"{'six results':<{width}}" + "".join(f"{c.total:>14,}" for c in columns) + f"   goal <= {RESULTS_GOAL:,}")
    print(
        f"{'tools/list (bytes)':<{width}}"
        + "".join(f"{c.listing:>14,}" for c in columns)
        + f"   goal <= {LISTING_GOAL:,}"
    )
    print(f"{'structuredContent':<{width}}" + "".join(f"{sum(c.structured.values()):>14,}" for c in columns))
    print(f"{'deployment ended':<{width}}" + "".join(f"{c.status:>14}" for c in columns))
    if len(columns) == 2:
        before, after = columns
        print(
            f"results {after.total / before.total:.2f}x of {before.label}, "
            f"tools/list {after.listing / before.listing:.2f}x of {before.label}"
        )
    current = columns[-1]
    met = current.total <= RESULTS_GOAL and current.listing <= LISTING_GOAL
    print("goals met" if met else "goals NOT met")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline",
        default="merge-base",
        help="a git revision to compare with; 'merge-base' (default): where this branch left main; 'none'",
    )
    parser.add_argument("--version", default=VERSION, help="the release to ship (3.0.0: the bad one)")
    parser.add_argument("--show", action="store_true", help="print each result's text as the agent reads it")
    parser.add_argument("--dump", type=Path, help="write each result's structuredContent as JSON into this folder")
    args = parser.parse_args()
    columns: list[Sizes] = []
    baseline = _merge_base() if args.baseline == "merge-base" else args.baseline
    with tempfile.TemporaryDirectory(prefix="agent-tokens-baseline-") as exported:
        if baseline not in (None, "none") and not _same_tree(baseline):
            source = _export(baseline, Path(exported))
            if source is None:
                print(f"cannot export {baseline} with git; measuring this checkout alone", file=sys.stderr)
            else:
                try:
                    columns.append(_measure(baseline[:12], source, args.version))
                except Exception as exc:  # the baseline's own failure must not hide this checkout's numbers
                    print(f"the loop failed on {baseline}: {exc!r:.300}", file=sys.stderr)
        columns.append(_measure("this checkout", ROOT, args.version))
    current = columns[-1]
    if args.show:
        for name, text in current.texts.items():
            print(f"--- {name} ({len(text):,} characters)\n{text}\n")
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        for name, record in current.records.items():
            (args.dump / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    _report(columns)
    return 0 if columns[-1].total <= RESULTS_GOAL and columns[-1].listing <= LISTING_GOAL else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
