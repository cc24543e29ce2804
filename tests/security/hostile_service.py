"""A service an agent could ship to see what deploy-mcp hands it: /env answers with its whole environment.

``python hostile_service.py --port N``. With CRASH_WITH set it prints that text (a str.format template over
its environment) to stderr and exits 3 before
listening, as a service that dumps its configuration when it fails to start. Once the file BREAK_FILE names exists,
``/health`` answers 500 with the BOOM_WITH template filled in: an error page that shows the configuration.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        broken = os.environ.get("BREAK_FILE")
        if self.path == "/health" and broken and os.path.exists(broken):
            self._answer(500, os.environ.get("BOOM_WITH", "").format(**os.environ).encode())
            return
        if self.path == "/health":
            body = b'{"status": "ok"}'
        elif self.path == "/env":
            body = json.dumps(dict(os.environ)).encode()
        else:
            body = b"hello"
        self._answer(200, body)

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    crash = os.environ.get("CRASH_WITH")
    if crash:  # a template over the environment, so the printed line is not itself an env value
        print(crash.format(**os.environ), file=sys.stderr, flush=True)
        sys.exit(3)
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
