"""The example service's feature flag follows a flagd fractional rollout, as the feature-flag strategy ramps it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port

HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "server.py"


def write_flag(path: Path, on: int) -> None:
    flag = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on" if on >= 100 else "off"}
    if 0 < on < 100:
        flag["targeting"] = {"fractional": [["on", on], ["off", 100 - on]]}
    path.write_text(json.dumps({"flags": {"new-greeting": flag}}))


@pytest.fixture
def hello(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    flags = tmp_path / "flags.json"
    write_flag(flags, 25)
    port = free_port()
    env = {**os.environ, "FLAGS_FILE": str(flags), "FLAG_ERROR_RATE": "1", "VERSION": "2.0.0"}
    proc = subprocess.Popen([sys.executable, str(HELLO), "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, flags
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_fractional_flag_reaches_its_share_of_users_and_a_bug_behind_it_only_them(hello: tuple[str, Path]) -> None:
    url, flags = hello
    with httpx.Client() as client:
        answers = {user: client.get(f"{url}/", headers={"X-User-Id": str(user)}).status_code for user in range(400)}
        again = {user: client.get(f"{url}/", headers={"X-User-Id": str(user)}).status_code for user in range(50)}
        on = sum(1 for status in answers.values() if status == 500)  # FLAG_ERROR_RATE=1: every flagged user fails
        assert 60 <= on <= 140, f"{on} of 400 users saw a 25% flag"
        assert all(answers[user] == status for user, status in again.items()), "a user's variant is sticky"
        write_flag(flags, 0)
        time.sleep(0.02)
        assert all(client.get(f"{url}/", headers={"X-User-Id": str(u)}).status_code == 200 for u in range(100))
        write_flag(flags, 100)
        time.sleep(0.02)
        assert client.get(f"{url}/").status_code == 500
