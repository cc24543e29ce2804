"""`deploy-mcp demo`, the README's first command, run for real: what a newcomer watches for, and nothing left behind.

One run (about 45 s, more on a busy machine) is shared by the tests: the demo copies examples/ into a temporary
folder, drives `deploy-mcp serve` over stdio while sending traffic, and stops everything at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ID = r"deploy-\d{4}-\d\d-\d\d-\d{3}"


@dataclass
class DemoRun:
    returncode: int
    text: str  # the output with rich's line wrapping undone: one space wherever it broke a line
    seconds: float
    workspace: Path  # TMPDIR of the demo: its project folder was made in here
    left_running: list[int]

    def section(self, title: str) -> str:
        """The output under the rule `title`, up to the next rule."""
        start = end = self.text.index(title) + len(title)
        while end < len(self.text) and self.text[end] in " ─":  # past the rule drawn to the title's right
            end += 1
        rule = self.text.find("──", end)
        return self.text[start : rule if rule != -1 else None]


def processes_under(folder: Path) -> list[int]:
    """Live processes working in ``folder`` or below it, also once the folder is deleted (the demo removes it)."""
    root = str(folder.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd").removesuffix(" (deleted)")
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]
        if (cwd == root or cwd.startswith(root + os.sep)) and state not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    workspace = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if k != "DEPLOY_MCP_CONFIG"}
    env.update(TMPDIR=str(workspace), COLUMNS="80")  # 80 columns: what a newcomer's terminal or a pipe has
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "deploy_mcp", "demo"],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:  # whatever happened, leave nothing running; the test below says whether the demo did its part
        seconds = time.monotonic() - started
        deadline = time.monotonic() + 10
        while (left := processes_under(workspace)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    print(result.stdout[-3000:], result.stderr[-3000:], f"{seconds:.0f} s", sep="\n")
    text = " ".join(result.stdout.split())
    return DemoRun(result.returncode, text, seconds, workspace, left)


def test_the_demo_finishes_and_writes_deploy_md(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.text[-2000:]
    assert "demo stopped" not in demo.text and "Traceback" not in demo.text
    assert re.search(r"connected to deploy-mcp over stdio: \d+ tools", demo.text)
    written = re.search(r"wrote (\S+)DEPLOY\.md: ([^.]*)", demo.section("write DEPLOY.md"))
    assert written, demo.section("write DEPLOY.md")
    assert "Rollback" in written.group(2) and "## Rollback" in demo.text
    assert re.search(r"demo finished in \d+ s", demo.text)


def test_the_good_release_is_promoted_and_the_bad_one_rolled_back_by_the_server(demo: DemoRun) -> None:
    """The outcomes, not the step messages: those are progress notifications, printed only while `deploy` waits."""
    good = demo.section("deploy hello 2.0.0 to production")
    assert "server asks the user" in good and "demo user: yes" in good  # production asks first
    assert re.search(rf"({ID}): succeeded", good), good[-1500:]

    bad = demo.section("deploy hello 3.0.0 to production")
    assert "canary" in bad and "demo user: yes" in bad
    # caught by its pre-promotion smoke checks or by the analysis at 5%: one request in five fails, so either
    caught = re.search(rf"({ID}): rolled_back - .*?(smoke|error rate).*?2\.0\.0 serves all traffic again", bad)
    assert caught, bad[-1500:]
    # nobody asked for the rollback: the server did it by itself. The demo's agent only ever resumes a canary that
    # paused because too few requests had reached it yet (no data is not a pass, and not a failure either).
    said = re.findall(r"agent: ([^\n]*)", bad)
    assert all("resume" in line for line in said), said


def test_the_history_is_shown_with_whole_ids(demo: DemoRun) -> None:
    after_the_last_deploy = demo.text.index("load on")
    history = demo.text[demo.text.index("Deployments", after_the_last_deploy) : demo.text.index("write DEPLOY.md")]
    # each id with the first status after it: a table row or a block, whichever fits the terminal
    shown = dict(re.findall(rf"({ID})(?:(?!deploy-).)*?(succeeded|rolled_back|paused|failed)", history))
    assert len(shown) == 4, history  # 1.0.0 to staging and production, 2.0.0, 3.0.0
    good = re.search(rf"({ID}): succeeded", demo.section("deploy hello 2.0.0 to production"))
    bad = re.search(rf"({ID}): rolled_back", demo.section("deploy hello 3.0.0 to production"))
    assert good and bad
    assert shown[good.group(1)] == "succeeded" and shown[bad.group(1)] == "rolled_back"
    assert "…" not in history and "3.0.0 to production" in history


def test_nothing_is_left_running(demo: DemoRun) -> None:
    assert demo.left_running == [], f"processes outlived the demo: {demo.left_running}"
    routers = re.findall(r"router on http://127\.0\.0\.1:(\d+)", demo.text)
    assert len(routers) == 2, demo.text[-1000:]  # staging and production were stopped, and said so
    for port in routers:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(port))) != 0, f"router port {port} still answers"
    assert not list(demo.workspace.glob("deploy-mcp-demo-*")), "the temporary project was not removed"


def test_the_demo_project_is_the_example_with_its_overrides(tmp_path: Path) -> None:
    from deploy_mcp.config.loader import load_project
    from deploy_mcp.demo import DEMO_ANALYSIS, _project

    config, ports = _project(tmp_path / "demo")
    hello = load_project(config).config.services["hello"]
    assert {name: env.port for name, env in hello.environments.items()} == ports
    assert hello.environments["production"].requires == []
    assert hello.environments["production"].steps == [5, 25, 50, 100]  # the rest is the example's
    assert hello.environments["staging"].analysis.min_requests == DEMO_ANALYSIS["min_requests"]
    assert hello.versions["3.0.0"].env["ERROR_RATE"] == "0.2"


def test_an_example_without_what_the_demo_needs_stops_it_naming_the_key(tmp_path: Path) -> None:
    from deploy_mcp.demo import DemoSetupError, _project

    examples = tmp_path / "examples"
    shutil.copytree(Path(__file__).resolve().parents[1] / "examples", examples)
    text = (examples / "deploy.toml").read_text()
    (examples / "deploy.toml").write_text(
        text.replace("[services.hello.environments.production]", "[services.hello.environments.prod]")
    )
    with pytest.raises(DemoSetupError, match=r"examples/deploy\.toml has no services\.hello\.environments\.production"):
        _project(tmp_path / "demo", examples)
    (examples / "deploy.toml").write_text(text.replace('env = { ERROR_RATE = "0.2", LATENCY_MS = "250" }', "env = {}"))
    with pytest.raises(DemoSetupError, match=r'services\.hello\.versions\."3\.0\.0"\.env\.ERROR_RATE'):
        _project(tmp_path / "demo2", examples)
