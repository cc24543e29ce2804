"""One instance: a child process on a free port, probed for readiness, restarted when it dies.

The lifecycle copies what people expect from a Kubernetes pod. The process starts in its own session (so it and
anything it spawns can be signalled as a group) and dies with the supervisor (PR_SET_PDEATHSIG), so a killed
supervisor leaves no orphan. It joins the router only when its health path answers 2xx (probed every 50 ms
while starting, then every health interval), leaves it after two failed probes, and is restarted with an
exponential back-off when it exits. Three exits within a minute, or three in a row without ever becoming ready,
is a crash loop, reported with the exit code and the last lines the process printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from deploy_mcp.core.masking import redact_output
from deploy_mcp.core.private import open_private, private_folder
from deploy_mcp.core.target import ErrorCode, InstancePhase, InstanceState, Release
from deploy_mcp.targets.local import http1
from deploy_mcp.targets.local.environment import BASE_NAMES, instance_environment
from deploy_mcp.targets.local.router import Router, Upstream
from deploy_mcp.targets.local.state import kill_group, start_ticks

log = logging.getLogger(__name__)

STARTUP_PROBE_INTERVAL = 0.05
FAILURES_TO_UNREADY = 2
CRASH_LOOP_EXITS = 3
CRASH_LOOP_WINDOW = 60.0
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0
HEALTHY_WORDS = frozenset({"ok", "healthy", "pass", "up"})


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now; the kernel picks it, so parallel runs do not collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGKILL the child when the supervisor dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return hook


def expand(command: list[str], port: int, version: str) -> list[str]:
    """Fill the command template: {port}, {version}, and {python} (the interpreter running deploy-mcp)."""
    return [
        part.replace("{port}", str(port)).replace("{version}", version).replace("{python}", sys.executable)
        for part in command
    ]


@dataclass
class Probe:
    healthy: bool
    status_code: int | None = None
    status: str | None = None
    detail: str = ""
    latency_ms: float | None = None


async def probe(port: int, path: str, timeout: float, host: str = "127.0.0.1") -> Probe:
    """GET the health path once: healthy is 2xx, and a JSON ``status`` (if any) of ok or healthy."""
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: deploy-mcp-probe\r\n"
                "Accept: application/json\r\nConnection: close\r\n\r\n".encode()
            )
            head = await http1.read_head(reader)
            if head is None:
                return Probe(False, detail="the connection closed without an answer")
            response = http1.parse_response(head)
            if response.framing.length is None and not response.framing.chunked:
                body = await reader.read(65536)
            else:
                body = await http1.read_body(reader, response.framing, 65536)
    except TimeoutError:
        return Probe(False, detail=f"no answer within {timeout:g} s")
    except (OSError, asyncio.IncompleteReadError, http1.ProtocolError) as exc:
        return Probe(False, detail=_describe_os_error(exc))
    finally:
        if writer is not None:
            writer.close()
    latency = round((time.perf_counter() - started) * 1000, 2)
    status_word = None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        document = json.loads(body)
        if isinstance(document, dict) and isinstance(document.get("status"), str):
            status_word = document["status"]
    healthy = 200 <= response.status < 300 and (status_word is None or status_word.lower() in HEALTHY_WORDS)
    text = body[:200].decode("utf-8", "replace").strip()
    detail = f"{path} answered {response.status}" + (f": {text}" if text and not healthy else "")
    return Probe(healthy, response.status, status_word, detail, latency)


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (not listening yet)"
    return str(exc) or type(exc).__name__


def log_tail(path: Path, lines: int = 6, limit: int = 600) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)[-limit:]


class Instance:
    """One slot of a version; the process behind it may be restarted many times."""

    def __init__(
        self,
        instance_id: str,
        release: Release,
        router: Router,
        *,
        cwd: Path,
        log_path: Path,
        health_path: str,
        health_interval: float,
        on_change: Callable[[], None],
        base_env: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.id = instance_id
        self.base_env = dict(base_env or {})
        self.owner = owner
        self.release = release
        self.version = release.version
        self.router = router
        self.cwd = cwd
        self.log_path = log_path
        self.health_path = health_path
        self.health_interval = health_interval
        self._on_change = on_change
        self.phase = InstancePhase.STARTING
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.pid_ticks: int | None = None
        self.upstream: Upstream | None = None
        self.restarts = 0
        self.started_at: datetime | None = None
        self.last_exit_code: int | None = None
        self.last_error: str | None = None
        self.fatal: str | None = None
        self.fatal_code = ErrorCode.START_FAILED
        self.last_probe: Probe | None = None
        self._exits: deque[float] = deque(maxlen=CRASH_LOOP_EXITS * 4)
        self._exits_before_ready = 0
        self._ever_ready_this_run = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- reporting -----------------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    @property
    def ready(self) -> bool:
        return self.phase is InstancePhase.READY

    @property
    def crash_loop(self) -> bool:
        now = time.monotonic()
        recent = sum(1 for at in self._exits if now - at <= CRASH_LOOP_WINDOW)
        return recent >= CRASH_LOOP_EXITS or self._exits_before_ready >= CRASH_LOOP_EXITS

    def snapshot(self) -> InstanceState:
        return InstanceState(
            id=self.id,
            version=self.version,
            phase=self.phase,
            pid=self.pid,
            port=self.port,
            url=f"http://127.0.0.1:{self.port}" if self.port else None,
            restarts=self.restarts,
            started_at=self.started_at,
            last_exit_code=self.last_exit_code,
            last_error=self.fatal or self.last_error,
        )

    def record(self) -> dict[str, object]:
        """What the state file keeps, so leftovers can be found and stopped after a supervisor dies."""
        return {"id": self.id, "version": self.version, "pid": self.pid, "ticks": self.pid_ticks, "port": self.port}

    def redact(self, text: str) -> str:
        """What the process printed, fit to be shown and recorded: its own env values and secret shapes masked.

        Crash output becomes the deployment's reason and lands in the ledger, where every agent reads it.
        """
        inherited = [value for name, value in self.base_env.items() if name not in BASE_NAMES]
        return redact_output(text, [*self.release.env.values(), *inherited])

    def _changed(self, phase: InstancePhase | None = None) -> None:
        if phase is not None:
            self.phase = phase
        self._on_change()

    # -- running -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"instance {self.id}")
        self._task.add_done_callback(self._report_bug)

    def _report_bug(self, task: asyncio.Task[None]) -> None:
        """A supervision bug must be visible: log it and mark the instance failed instead of hanging waiters."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("supervising %s failed", self.id, exc_info=task.exception())
        self.fatal = f"the supervisor failed to run this instance: {task.exception()}"
        self._changed(InstancePhase.CRASHED)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                exited = self._spawn()
            except OSError as exc:
                self.fatal_code = (
                    ErrorCode.COMMAND_NOT_FOUND if isinstance(exc, FileNotFoundError) else ErrorCode.START_FAILED
                )
                self.fatal = self._spawn_error(exc)
                self._changed(InstancePhase.CRASHED)
                return
            self._changed(InstancePhase.STARTING)
            prober = asyncio.get_running_loop().create_task(self._probe_loop())
            code = await exited
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
            self._leave_pool()
            assert self.process is not None
            kill_group(self.process.pid)  # anything the process left in its group goes with it
            if self._stopping:
                break
            self._record_exit(code)
            self._changed(InstancePhase.CRASHED)
            backoff = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, self._recent_exits() - 1))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()

    def _spawn(self) -> asyncio.Future[int]:
        if not self.release.command:
            raise FileNotFoundError("no command")
        self.port = free_port()
        argv = expand(self.release.command, self.port, self.version)
        env = instance_environment(
            self.base_env,
            self.release.env,
            port=self.port,
            version=self.version,
            service=self.release.service,
            owner=self.owner,
        )
        private_folder(self.log_path.parent)
        with open_private(self.log_path) as output:
            output.write(f"--- {datetime.now(UTC).isoformat()} starting {self.id}: {argv}\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
            )
        self.pid_ticks = start_ticks(self.process.pid)
        self.started_at = datetime.now(UTC)
        self._ever_ready_this_run = False
        self.upstream = Upstream(self.id, self.version, self.port)
        return _watch_exit(self.process)

    def _spawn_error(self, exc: OSError) -> str:
        program = self.release.command[0] if self.release.command else ""
        if isinstance(exc, FileNotFoundError):
            if not self.release.command:
                return "the service has no command to run"
            if not self.cwd.is_dir():
                return f"the working directory {self.cwd} does not exist"
            return f"command not found: {program!r} (not on PATH and not a file relative to {self.cwd})"
        if isinstance(exc, PermissionError):
            return f"command {program!r} is not executable"
        return f"could not start {program!r}: {exc}"

    async def _probe_loop(self) -> None:
        failures = 0
        while True:
            assert self.port is not None
            result = await probe(self.port, self.health_path, max(1.0, min(self.health_interval, 5.0)))
            self.last_probe = result
            if result.healthy:
                failures = 0
                if self.phase is not InstancePhase.READY and not self._stopping:  # a draining one stays out
                    self._ever_ready_this_run = True
                    self._exits_before_ready = 0
                    assert self.upstream is not None
                    self.router.enroll(self.upstream)
                    self._changed(InstancePhase.READY)
            else:
                failures += 1
                if self.phase is InstancePhase.READY and failures >= FAILURES_TO_UNREADY:
                    self._leave_pool()
                    self.last_error = self.redact(result.detail)
                    self._changed(InstancePhase.UNREADY)
            starting = not self._ever_ready_this_run
            await asyncio.sleep(STARTUP_PROBE_INTERVAL if starting else self.health_interval)

    def _leave_pool(self) -> None:
        if self.upstream is not None and self.upstream.enrolled:
            self.router.withdraw(self.upstream)

    def _recent_exits(self) -> int:
        now = time.monotonic()
        return sum(1 for at in self._exits if now - at <= CRASH_LOOP_WINDOW)

    def _record_exit(self, code: int) -> None:
        self.restarts += 1
        self._exits.append(time.monotonic())
        if not self._ever_ready_this_run:
            self._exits_before_ready += 1
        self.last_exit_code = code
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = self.redact(log_tail(self.log_path))
        self.last_error = f"{how}" + (f"; last output: {tail}" if tail else "")
        log.warning("instance %s %s", self.id, self.last_error)

    async def stop(self, drain_timeout: float, kill_timeout: float) -> None:
        """Drain (no new requests, in-flight ones finish), SIGTERM the group, SIGKILL it after kill_timeout."""
        self._stopping = True
        self._wake.set()
        upstream = self.upstream
        process = self.process
        if upstream is not None and upstream.enrolled:
            self.router.withdraw(upstream)
            self._changed(InstancePhase.DRAINING)
            await self.router.wait_drained(upstream, drain_timeout)
        if process is not None and process.returncode is None:
            kill_group(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + kill_timeout
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            kill_group(process.pid, signal.SIGKILL)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._changed(InstancePhase.STOPPED)

    async def wait_done(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _watch_exit(process: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    """A future resolved with the exit code, woken by a pidfd (no thread, no polling) where Linux offers one."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        pidfd = None

    def reap() -> None:
        if future.done():
            return
        code = process.poll()
        if code is None:
            return
        if pidfd is not None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        future.set_result(code)

    if pidfd is not None:
        loop.add_reader(pidfd, reap)
    else:

        async def poll() -> None:
            while not future.done():
                reap()
                await asyncio.sleep(0.05)

        _background.add(task := loop.create_task(poll()))
        task.add_done_callback(_background.discard)
    return future


_background: set[asyncio.Task[None]] = set()
