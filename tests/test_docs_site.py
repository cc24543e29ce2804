"""The docs site, checked the way its readers meet it.

The reference pages must match the code that generates them; the site must build; every internal link in the
built pages must land on a file and, for a #fragment, on an element with that id; and in headless Chromium every
page must render without a console error, the local search must find a tool by its name, and a screenshot of the
home page is kept in artifacts/ for CI to publish.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import free_port, require_component

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "docs" / ".vitepress" / "dist"
CHECK_SITE = REPO / "tests" / "browser" / "check_site.mjs"
SCREENSHOT = REPO / "artifacts" / "docs-home.png"
CHROMIUM = Path("/usr/bin/chromium")
SEARCHED_TOOL = "plan_deployment"
HOW_TO_INSTALL = "install Node.js 18+ and run scripts/setup-docs.sh (npm ci at the repository root)"


def test_generated_reference_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_reference.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_no_text_is_swallowed_by_vue_interpolation() -> None:
    """VitePress compiles pages as Vue templates: a `{{` outside a code block or a v-pre element is evaluated as
    an expression and the reader sees nothing (or something else) where the text was."""
    offending = []
    for path in sorted((REPO / "docs").rglob("*.md")):
        if "node_modules" in path.parts:
            continue
        prose = re.sub(r"^(```+|~~~+).*?^\1", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
        prose = re.sub(r"<(\w+) v-pre[^>]*>.*?</\1>", "", prose, flags=re.S)
        for match in re.finditer(r"\{\{", prose):
            offending.append(f"{path.relative_to(REPO)}: {prose[max(0, match.start() - 30) : match.start() + 30]!r}")
    assert not offending, "write these as <code v-pre>...</code> or in a fenced block:\n" + "\n".join(offending)


@pytest.fixture(scope="module")
def built_site() -> Path:
    """docs/.vitepress/dist, built now by `npm run docs:build` so it is the site of this very tree."""
    npm = shutil.which("npm")
    require_component("node", npm is not None and shutil.which("node") is not None, HOW_TO_INSTALL)
    require_component("the docs' npm packages", (REPO / "node_modules" / ".bin" / "vitepress").exists(), HOW_TO_INSTALL)
    started = time.monotonic()
    result = subprocess.run(
        [str(npm), "run", "docs:build"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DOCS_BASE": "/"},
    )
    assert result.returncode == 0, f"npm run docs:build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    print(f"docs:build took {time.monotonic() - started:.1f} s")
    assert (DIST / "index.html").is_file()
    return DIST


class _Page(HTMLParser):
    """The ids a page defines and the links it makes (href and src)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            elif name in ("href", "src") and value:
                self.links.append(value)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _target(site: Path, page: Path, link: str) -> tuple[Path, str] | None:
    """The file and fragment an internal link points to; None for external links and other schemes."""
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
        return None
    path = unquote(parts.path)
    if not path:
        return page, parts.fragment
    resolved = site / path.lstrip("/") if path.startswith("/") else page.parent / path
    if path.endswith("/"):
        resolved = resolved / "index.html"
    return resolved.resolve(), parts.fragment


def test_every_internal_link_resolves(built_site: Path) -> None:
    pages = sorted(built_site.rglob("*.html"))
    parsed = {path.resolve(): _parse(path) for path in pages}
    broken: list[str] = []
    checked = 0
    for path, page in parsed.items():
        for link in page.links:
            target = _target(built_site, path, link)
            if target is None:
                continue
            file, fragment = target
            checked += 1
            where = f"{path.relative_to(built_site.resolve())}: {link}"
            if not file.is_relative_to(built_site.resolve()):
                broken.append(f"{where} leaves the site")
            elif not file.is_file():
                broken.append(f"{where} -> no such file {file.relative_to(built_site.resolve())}")
            elif fragment and file.suffix == ".html" and unquote(fragment) not in parsed[file].ids:
                broken.append(f"{where} -> no element with id {fragment!r}")
    assert checked > 100, f"only {checked} internal links found; is the site empty?"
    assert not broken, f"{len(broken)} broken internal link(s):\n" + "\n".join(broken)


@pytest.fixture
def served_site(built_site: Path) -> Iterator[str]:
    """The built folder over HTTP on 127.0.0.1, as a static host would serve it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(built_site), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the static server did not come up on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_site_works_in_a_real_browser(served_site: str) -> None:
    require_component("chromium", CHROMIUM.exists(), "install Debian's chromium (scripts/setup-docs.sh does, as root)")
    require_component("node", shutil.which("node") is not None, HOW_TO_INSTALL)
    SCREENSHOT.unlink(missing_ok=True)
    result = subprocess.run(
        [
            "node",
            str(CHECK_SITE),
            "--url",
            served_site,
            "--dist",
            str(DIST),
            "--search",
            SEARCHED_TOOL,
            "--screenshot",
            str(SCREENSHOT),
            "--chromium",
            str(CHROMIUM),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"{result.stderr}\n{result.stdout}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"browser check: {summary['pages']} pages, {summary['diagrams']} diagrams in {summary['seconds']:.1f} s")
    assert summary["pages"] == len([p for p in DIST.rglob("*.html") if p.name != "404.html"])
    assert summary["diagrams"] > 0, "the concept pages draw diagrams; none was found"
    assert SEARCHED_TOOL in summary["search"]["chosen"], summary["search"]
    assert summary["search"]["landed"].split("#")[0].endswith("/reference/tools.html"), summary["search"]
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the home page screenshot is not a PNG"
