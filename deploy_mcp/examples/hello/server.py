"""hello: a small HTTP service to deploy, with knobs that make a release good or bad.

Run it as ``python -m examples.hello --port 8000`` from the repository root, or as ``python examples/hello``
or ``python examples/hello/server.py`` from anywhere. Standard library only.

Endpoints:
  GET /health       {"status": "ok", "version", "uptime", "dependencies"}; 503 {"status": "starting"} during
                    a slow start
  GET /             a greeting (a new one when the feature flag is on)
  GET /api/status   JSON: service, version, uptime, requests served, errors returned, flag state
  anything else     404 with a JSON body

Knobs (environment variables):
  VERSION          the version to report (the local platform sets it)
  PORT             the port, when --port is not given
  ERROR_RATE       fraction of requests to / and /api/* answered with 500 (0.2 = one in five)
  LATENCY_MS       extra milliseconds before answering / and /api/*
  CRASH_ON_START   1 or true: print why and exit with code 3 before listening
  SLOW_START_S     seconds during which /health answers 503 "starting"
  FLAGS_FILE       a flagd-format JSON file; FLAG_NAME (default "new-greeting") names the flag to read. A
                   fractional rollout ("fractional": [["on", 25], ["off", 75]]) turns the flag on for that share of
                   users, bucketed by the X-User-Id header (a random user per request without it)
  FLAG_ERROR_RATE  like ERROR_RATE, but only for requests that see the flag on: a bug behind the flag

SIGTERM stops accepting connections, lets requests in flight finish (up to 10 s) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVICE = "hello"
STARTED = time.monotonic()


def _env_float(name: str, default: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        sys.exit(f"hello: {name}={raw!r} is not a number")


class Settings:
    def __init__(self) -> None:
        self.version = os.environ.get("VERSION", "0.0.0-dev")
        self.error_rate = min(1.0, max(0.0, _env_float("ERROR_RATE")))
        self.flag_error_rate = min(1.0, max(0.0, _env_float("FLAG_ERROR_RATE")))
        self.latency = max(0.0, _env_float("LATENCY_MS")) / 1000.0
        self.slow_start = max(0.0, _env_float("SLOW_START_S"))
        self.flags_file = os.environ.get("FLAGS_FILE") or None
        self.flag_name = os.environ.get("FLAG_NAME") or "new-greeting"
        self.crash_on_start = os.environ.get("CRASH_ON_START", "").strip().lower() in {"1", "true", "yes", "on"}


class FlagReader:
    """Reads one flag from a flagd file, re-reading only when the file changes (toggles are instant).

    The flag is held as the share of users (0-100) who see it on: 100 when the default variant is on, the "on"
    weight of a fractional rule otherwise, so a ramp of 5%, 25%, 50% really reaches that share of users.
    """

    def __init__(self, path: str | None, name: str) -> None:
        self.path = path
        self.name = name
        self._stamp: tuple[int, int, int] | None = None
        self._share = 0.0
        self._lock = threading.Lock()

    def enabled(self, user: str | None = None) -> bool:
        """Whether this user sees the flag on; a user without a key is drawn at random."""
        share = self.share()
        if share <= 0 or share >= 100:
            return share >= 100
        key = user if user is not None else str(random.random())
        return zlib.crc32(f"{self.name}:{key}".encode()) % 100 < share

    def share(self) -> float:
        if not self.path:
            return 0.0
        try:
            stat = os.stat(self.path)
        except OSError:
            return 0.0
        # the inode too: an atomic replace within one mtime tick can keep the size
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                self._share = self._read()
            return self._share

    def _read(self) -> float:
        """flagd: {"flags": {NAME: {"state": "ENABLED", "variants": {...}, "defaultVariant": "on",
        "targeting": {"fractional": [["on", 25], ["off", 75]]}}}}."""
        try:
            with open(self.path or "", encoding="utf-8") as handle:
                flag = json.load(handle).get("flags", {}).get(self.name)
        except (OSError, ValueError, AttributeError):
            return 0.0
        if not isinstance(flag, dict) or flag.get("state", "ENABLED") != "ENABLED":
            return 0.0
        variants = flag.get("variants", {"on": True, "off": False})
        if not isinstance(variants, dict):
            return 0.0
        targeting = flag.get("targeting")
        fractional = targeting.get("fractional") if isinstance(targeting, dict) else None
        if isinstance(fractional, list) and fractional:
            weights = [(b[0], float(b[1])) for b in fractional if isinstance(b, list) and len(b) == 2]
            total = sum(weight for _, weight in weights)
            on = sum(weight for name, weight in weights if _truthy(variants.get(name)))
            return 100.0 * on / total if total > 0 else 0.0
        return 100.0 if _truthy(variants.get(flag.get("defaultVariant"))) else 0.0


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in {"on", "true"})


class Counters:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.in_flight = 0
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a router reuses connections
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would delay the second 40 ms
    server_version = "hello"
    settings: Settings
    flags: FlagReader
    counters: Counters

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise
        return

    def do_GET(self) -> None:
        counters = self.counters
        with counters.lock:
            counters.requests += 1
            counters.in_flight += 1
        try:
            self._route()
        finally:
            with counters.lock:
                counters.in_flight -= 1
                if counters.in_flight == 0:
                    counters.idle.notify_all()

    def do_HEAD(self) -> None:
        self.do_GET()

    def _route(self) -> None:
        path = self.path.split("?", 1)[0]
        settings = self.settings
        uptime = round(time.monotonic() - STARTED, 3)
        if path == "/health":
            if uptime < settings.slow_start:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "starting", "version": settings.version})
                return
            self._json(
                HTTPStatus.OK, {"status": "ok", "version": settings.version, "uptime": uptime, "dependencies": {}}
            )
            return
        if path not in ("/", "/api/status"):
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found", "path": path})
            return
        if settings.latency:
            time.sleep(settings.latency)
        if settings.error_rate and random.random() < settings.error_rate:
            with self.counters.lock:
                self.counters.errors += 1
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "injected failure", "version": settings.version})
            return
        flag_on = self.flags.enabled(self.headers.get("X-User-Id"))
        if flag_on and settings.flag_error_rate and random.random() < settings.flag_error_rate:
            with self.counters.lock:
                self.counters.errors += 1
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "bug behind the flag", "version": settings.version})
            return
        if path == "/":
            greeting = "Hello, friend! Welcome to the new hello." if flag_on else "Hello from hello."
            self._json(HTTPStatus.OK, {"message": greeting, "version": settings.version})
            return
        with self.counters.lock:
            requests, errors = self.counters.requests, self.counters.errors
        self._json(
            HTTPStatus.OK,
            {
                "service": SERVICE,
                "version": settings.version,
                "uptime": uptime,
                "requests": requests,
                "errors": errors,
                "flags": {self.flags.name: flag_on} if self.flags.path else {},
            },
        )

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Version", self.settings.version)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold up exit
    allow_reuse_address = True
    request_queue_size = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hello", description="A small service to deploy.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    settings = Settings()
    if settings.crash_on_start:
        print(f"hello {settings.version}: CRASH_ON_START is set, exiting", file=sys.stderr, flush=True)
        return 3
    counters = Counters()
    handler = type(
        "BoundHandler",
        (Handler,),
        {"settings": settings, "flags": FlagReader(settings.flags_file, settings.flag_name), "counters": counters},
    )
    try:
        server = Server((args.host, args.port), handler)
    except OSError as exc:
        print(f"hello: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 2

    def on_sigterm(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    print(f"hello {settings.version} listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.socket.close()
    with counters.lock:  # let requests in flight finish
        counters.idle.wait_for(lambda: counters.in_flight == 0, timeout=10.0)
    print(f"hello {settings.version} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
