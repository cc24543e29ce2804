"""Issue 9 item 6: a path an agent names cannot hang the server or feed a linter without end.

A FIFO is opened only without blocking and refused (it is not a regular file); forty such calls at once leave
every other tool answering. lint_migrations refuses a file or a folder too large to lint, before reading it.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.migrations.layout import MAX_FILE_BYTES, MAX_TOTAL_BYTES
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio

CONFIG = textwrap.dedent("""\
    [services.web]
    command = ["{python}", "-m", "http.server", "{port}"]
    [services.web.environments.staging]
    strategy = "rolling"
    """)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Path], Client]]:
    apps: list[App] = []

    def open_project(root: Path) -> Client:
        (root / "deploy.toml").write_text(CONFIG, encoding="utf-8")
        app = App.load(root / "deploy.toml")
        apps.append(app)
        return Client(build_server(app))

    try:
        yield open_project
    finally:
        for app in apps:
            app.close()


async def test_forty_calls_on_a_fifo_neither_hang_nor_freeze_other_tools(tmp_path: Path, connect) -> None:
    os.mkfifo(tmp_path / "pipe.md")
    os.mkfifo(tmp_path / "Dockerfile")  # read by the generator's project scan: must not hang it either
    refusals: list[str] = []
    async with connect(tmp_path) as client:

        async def on_the_fifo() -> None:
            result = await client.call_tool("generate_deploy_md", {"path": "pipe.md"})
            assert result.is_error
            refusals.append(result.content[0].text)

        with anyio.fail_after(120):  # a hang fails here instead of stalling the suite
            async with anyio.create_task_group() as group:
                for _ in range(40):
                    group.start_soon(on_the_fifo)
                other = await client.call_tool("generate_deploy_md", {})  # another tool call meanwhile
                history = await client.read_resource("deploy://config")
    assert len(refusals) == 40
    assert all("pipe.md" in text and "FIFO" in text and "Traceback" not in text for text in refusals), refusals[0]
    assert not other.is_error and "## " in other.structured_content["content"]
    assert history.contents


async def test_lint_migrations_refuses_a_file_or_folder_too_large_before_reading_it(tmp_path: Path, connect) -> None:
    huge = tmp_path / "migrations" / "0001_seed.sql"
    huge.parent.mkdir()
    with open(huge, "wb") as file:  # sparse: its size is what counts, and nothing is read
        file.truncate(MAX_FILE_BYTES + 1)
    many = tmp_path / "db" / "migrations"
    many.mkdir(parents=True)
    share = MAX_FILE_BYTES - 1
    for index in range(MAX_TOTAL_BYTES // share + 1):
        with open(many / f"{index:04d}_step.sql", "wb") as file:
            file.truncate(share)
    async with connect(tmp_path) as client:
        one = await client.call_tool("lint_migrations", {"path": "migrations"})
        together = await client.call_tool("lint_migrations", {"path": "db/migrations"})
        (tmp_path / "small.sql").write_text("CREATE TABLE t (id bigint PRIMARY KEY);\n", encoding="utf-8")
        fine = await client.call_tool("lint_migrations", {"path": "small.sql"})
    assert one.is_error and together.is_error
    one_text, together_text = one.content[0].text, together.content[0].text
    assert "0001_seed.sql" in one_text and f"{MAX_FILE_BYTES // 1048576} MB" in one_text, one_text
    assert f"{MAX_TOTAL_BYTES // 1048576} MB" in together_text and "narrower folder" in together_text, together_text
    assert "Traceback" not in one_text + together_text
    assert not fine.is_error, fine.content[0].text  # one file under the cap is linted as before
