"""lint_migrations: squawk's findings and our own rules on migrations written here, in every layout we read,
and the promise behind `irreversible`: a release declared roll-forward-only cannot be rolled back through MCP.

squawk runs for real (the binary from the squawk-cli wheel); the rollback test drives the real local platform
under load through an in-memory MCP client.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_component
from local_fixtures import free_port, wait_until_gone
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.migrations import MigrationPathError, MigrationReport, lint
from deploy_mcp.migrations.squawk import find_squawk
from deploy_mcp.server.app import build_server
from deploy_mcp.targets.local.loadgen import BackgroundLoad

HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "server.py"
PREAMBLE = "SET lock_timeout = '3s';\nSET statement_timeout = '15min';\n"  # the statement under test is on line 3


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


@pytest.fixture
def squawk_installed() -> None:
    require_component("squawk", find_squawk() is not None, "pip install 'deploy-mcp[migrations]' (squawk-cli)")


# -- squawk: each risky change, with what to write instead ---------------------------------------------------------

UNSAFE = {
    "volatile-default": (
        "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        "adding-field-with-default",
        "backfill",
    ),
    "index": ("CREATE INDEX users_email_idx ON users (email);", "require-concurrent-index-creation", "CONCURRENTLY"),
    "type-change": ("ALTER TABLE users ALTER COLUMN age TYPE bigint;", "changing-column-type", "new type"),
    "not-null": ("ALTER TABLE users ALTER COLUMN name SET NOT NULL;", "adding-not-nullable-field", "NOT VALID"),
    "drop-column": ("ALTER TABLE users DROP COLUMN legacy;", "ban-drop-column", "later release"),
    "foreign-key": (
        "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);",
        "adding-foreign-key-constraint",
        "VALIDATE CONSTRAINT",
    ),
    "rename": ("ALTER TABLE users RENAME COLUMN name TO full_name;", "renaming-column", "Expand / contract"),
}


@pytest.fixture(scope="module")
def unsafe_report(tmp_path_factory: pytest.TempPathFactory) -> MigrationReport:
    require_component("squawk", find_squawk() is not None, "pip install 'deploy-mcp[migrations]' (squawk-cli)")
    root = tmp_path_factory.mktemp("unsafe")
    files = {}
    for number, (name, (statement, _, _)) in enumerate(UNSAFE.items(), start=1):
        files[f"db/{number:03}_{name}.up.sql"] = PREAMBLE + statement + "\n"
        files[f"db/{number:03}_{name}.down.sql"] = "SELECT 1;\n"
    write(root, files)
    return lint("db", root=root)


@pytest.mark.parametrize("name", list(UNSAFE))
def test_squawk_flags_each_unsafe_change_with_its_safe_alternative(unsafe_report: MigrationReport, name: str) -> None:
    _, rule, advice = UNSAFE[name]
    number = list(UNSAFE).index(name) + 1
    file = f"db/{number:03}_{name}.up.sql"
    found = [f for f in unsafe_report.findings if f.file == file and f.rule == rule]
    assert found, [(f.file, f.rule) for f in unsafe_report.findings if f.file == file]
    finding = found[0]
    assert finding.line == 3 and finding.source == "squawk" and finding.severity == "error"
    assert advice.lower() in finding.safe_alternative.lower(), finding.safe_alternative
    assert finding.message


def test_the_foreign_key_also_needs_not_valid(unsafe_report: MigrationReport) -> None:
    fk = [f for f in unsafe_report.findings if f.file.endswith("_foreign-key.up.sql")]
    assert {"adding-foreign-key-constraint", "constraint-missing-not-valid"} <= {f.rule for f in fk}
    not_valid = next(f for f in fk if f.rule == "constraint-missing-not-valid")
    assert "NOT VALID" in not_valid.safe_alternative and "VALIDATE CONSTRAINT" in not_valid.safe_alternative


def test_changes_the_old_version_cannot_survive_make_the_release_roll_forward_only(
    unsafe_report: MigrationReport,
) -> None:
    irreversible = {f.file.split("_", 1)[1] for f in unsafe_report.findings if f.rule == "irreversible-migration"}
    assert irreversible == {"type-change.up.sql", "drop-column.up.sql", "rename.up.sql"}
    assert unsafe_report.irreversible
    assert "migrations_irreversible = true" in unsafe_report.summary
    assert unsafe_report.squawk_version and unsafe_report.files_checked[0] == "db/001_volatile-default.up.sql"
    assert len(unsafe_report.files_checked) == 2 * len(UNSAFE)
    # Down steps are judged by our rules, not by squawk: a down step that drops what its up step added is normal.
    assert not [f for f in unsafe_report.findings if f.file.endswith(".down.sql") and f.source == "squawk"]


# -- our rules: can the migration be undone, and without losing data? ----------------------------------------------

LAYOUTS_WITHOUT_DOWN = {
    "up-down-files": ({"m/001_add_note.up.sql": PREAMBLE}, "m/001_add_note.up.sql", 1),
    "folder": ({"m/001_add_note/up.sql": PREAMBLE}, "m/001_add_note/up.sql", 1),
    "sql-migrate": ({"m/001_add_note.sql": "-- note column\n-- +migrate Up\n" + PREAMBLE}, "m/001_add_note.sql", 2),
    "goose": ({"m/001_add_note.sql": "-- +goose Up\n" + PREAMBLE}, "m/001_add_note.sql", 1),
    "dbmate": ({"m/001_add_note.sql": "\n\n-- migrate:up\n" + PREAMBLE}, "m/001_add_note.sql", 3),
    "flyway": ({"m/V1__add_note.sql": PREAMBLE}, "m/V1__add_note.sql", 1),
}


@pytest.mark.parametrize("layout", list(LAYOUTS_WITHOUT_DOWN))
def test_a_missing_down_step_is_found_in_every_layout(tmp_path: Path, squawk_installed: None, layout: str) -> None:
    files, file, line = LAYOUTS_WITHOUT_DOWN[layout]
    report = lint("m", root=write(tmp_path, files))
    assert [(f.file, f.line, f.rule) for f in report.findings] == [(file, line, "missing-down-migration")]
    finding = report.findings[0]
    assert finding.severity == ("info" if layout == "flyway" else "warning")  # Flyway is forward-only by habit
    assert finding.source == "deploy-mcp" and "down step" in finding.safe_alternative
    assert "migrations_irreversible" in finding.safe_alternative
    assert not report.irreversible  # no down step is not the same as a schema the old version cannot use


def test_single_file_migrations_are_split_at_their_markers(tmp_path: Path, squawk_installed: None) -> None:
    write(
        tmp_path,
        {
            "m/002_orders.sql": """\
            -- +goose Up
            SET lock_timeout = '3s';
            SET statement_timeout = '15min';
            CREATE INDEX orders_customer_idx ON orders (customer_id);

            -- +goose Down
            DROP TABLE orders;
            """,
        },
    )
    report = lint("m", root=tmp_path)
    rules = {(f.rule, f.line) for f in report.findings}
    assert ("require-concurrent-index-creation", 4) in rules  # squawk saw the up section, with the file's lines
    assert ("destructive-down-migration", 7) in rules  # our rule saw the down section
    assert not any(f.rule == "ban-drop-table" for f in report.findings), "squawk must not lint the down section"


def test_a_destructive_down_step_loses_data_on_rollback(tmp_path: Path, squawk_installed: None) -> None:
    write(
        tmp_path,
        {
            "m/003_audit.up.sql": PREAMBLE + "CREATE TABLE IF NOT EXISTS audit (id bigint);\n",
            "m/003_audit.down.sql": """\
            -- DROP TABLE in a comment is not a statement
            SELECT 'DROP TABLE users';
            ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_audit_fk, ALTER COLUMN note DROP DEFAULT;
            DROP INDEX CONCURRENTLY IF EXISTS audit_idx;
            DROP TABLE IF EXISTS audit;
            ALTER TABLE orders
              DROP COLUMN IF EXISTS audit_id;
            DO $$ BEGIN EXECUTE 'DROP TABLE x'; END $$;
            """,
        },
    )
    report = lint("m", root=tmp_path)
    destructive = [(f.line, f.message) for f in report.findings if f.rule == "destructive-down-migration"]
    assert [line for line, _ in destructive] == [5, 6]
    assert "table audit" in destructive[0][1] and "column orders.audit_id" in destructive[1][1]
    finding = next(f for f in report.findings if f.rule == "destructive-down-migration")
    assert finding.file == "m/003_audit.down.sql" and finding.severity == "warning"
    assert "lossless" in finding.safe_alternative and "backup" in finding.safe_alternative


def test_an_empty_down_step_is_reported(tmp_path: Path, squawk_installed: None) -> None:
    write(
        tmp_path,
        {
            "m/004/up.sql": PREAMBLE + "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_idx ON a (b);\n",
            "m/004/down.sql": "-- nothing to undo, surely\n\n",
            "m/005_x.sql": "-- migrate:up\n" + PREAMBLE + "-- migrate:down\n",
        },
    )
    report = lint("m", root=tmp_path)
    assert [(f.file, f.line, f.rule) for f in report.findings] == [
        ("m/004/down.sql", 1, "empty-down-migration"),
        ("m/005_x.sql", 4, "empty-down-migration"),
    ]


CLEAN_UP = PREAMBLE + (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);\n"
    "ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;\n"
)
CLEAN_DOWN = (
    "SET lock_timeout = '3s';\n"
    "-- the note column stays: the previous version ignores it, and dropping it would lose what was written\n"
    "DROP INDEX CONCURRENTLY IF EXISTS orders_customer_id_idx;\n"
)


def test_a_clean_reversible_migration_has_no_findings(tmp_path: Path, squawk_installed: None) -> None:
    write(tmp_path, {"db/migrations/007_note.up.sql": CLEAN_UP, "db/migrations/007_note.down.sql": CLEAN_DOWN})
    report = lint(tmp_path / "db" / "migrations", root=tmp_path)
    assert report.findings == [], [(f.rule, f.message) for f in report.findings]
    assert not report.irreversible
    assert report.files_checked == ["db/migrations/007_note.up.sql", "db/migrations/007_note.down.sql"]
    assert report.summary.startswith("2 file(s) in 1 migration(s): no findings")


def test_paths_that_name_nothing_lintable_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    for path, expected in (("nowhere", "does not exist"), ("empty", "no .sql files"), ("notes.txt", "not a .sql")):
        with pytest.raises(MigrationPathError, match=expected):
            lint(path, root=tmp_path)


# -- through MCP ---------------------------------------------------------------------------------------------------


async def call(app: App, tool: str, arguments: dict) -> tuple[bool, dict | None, str]:
    async with Client(build_server(app)) as client:
        result = await client.call_tool(tool, arguments)
    text = result.content[0].text if result.content else ""
    return result.is_error, result.structured_content, text


@pytest.mark.anyio
async def test_lint_migrations_through_mcp(tmp_path: Path, squawk_installed: None) -> None:
    project = tmp_path / "project"
    write(
        project,
        {
            "deploy.toml": '[services.web]\ncommand = ["run", "{port}"]\n',
            "migrations/001_note.up.sql": CLEAN_UP,
            "migrations/001_note.down.sql": CLEAN_DOWN,
            "migrations/002_drop_legacy.up.sql": PREAMBLE + "ALTER TABLE orders DROP COLUMN IF EXISTS legacy;\n",
        },
    )
    (tmp_path / "outside.sql").write_text("DROP TABLE users;\n")
    (project / "migrations" / "003_elsewhere.up.sql").symlink_to(tmp_path / "outside.sql")
    app = App.load(project / "deploy.toml")
    async with Client(build_server(app)) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool("lint_migrations", {"path": "migrations"})
        escapes = [await client.call_tool("lint_migrations", {"path": p}) for p in ("../outside.sql", "/etc")]
        missing = await client.call_tool("lint_migrations", {"path": "db/migrations"})
    assert listed["lint_migrations"].annotations.read_only_hint is True
    assert not result.is_error, result.content
    report = result.structured_content
    assert report["irreversible"] is True and report["path"] == "migrations"
    dropped = [f for f in report["findings"] if f["file"] == "migrations/002_drop_legacy.up.sql"]
    assert {f["rule"] for f in dropped} >= {"ban-drop-column", "irreversible-migration", "missing-down-migration"}
    assert all(f["line"] == 3 for f in dropped if f["rule"] != "missing-down-migration")
    assert all(f["safe_alternative"] for f in report["findings"])
    assert not [f for f in report["files_checked"] if "elsewhere" in f]
    assert any("003_elsewhere" in note and "not followed" in note for note in report["notes"]), report["notes"]
    for refused in escapes:
        assert refused.is_error
        assert "outside the project root" in refused.content[0].text
        assert "Traceback" not in refused.content[0].text
    assert missing.is_error and "'db/migrations' does not exist" in missing.content[0].text
    assert "found here: migrations" in missing.content[0].text


@pytest.mark.anyio
async def test_lint_migrations_without_deploy_toml_reads_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, squawk_installed: None
) -> None:
    write(tmp_path, {"sql/001_a.up.sql": CLEAN_UP, "sql/001_a.down.sql": CLEAN_DOWN})
    monkeypatch.delenv("DEPLOY_MCP_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    is_error, report, text = await call(App.load(start=tmp_path), "lint_migrations", {"path": "sql"})
    assert not is_error, text
    assert report is not None and report["findings"] == [] and report["files_checked"][0] == "sql/001_a.up.sql"
    is_error, _, text = await call(App.load(start=tmp_path), "lint_migrations", {"path": "../.."})
    assert is_error and "outside the project root" in text


# -- roll-forward-only: rollback across an irreversible release is refused -------------------------------------------


def rollout_config(port: int) -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    return f"""
[services.hello]
command = {command}
replicas = 1
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.versions."2.0.0"]   # its migrations drop a column 1.0.0 reads
migrations_irreversible = true

[services.hello.environments.staging]
strategy = "rolling"
port = {port}
analysis = {{ interval = "1s", bake = "1.5s", min_requests = 20 }}
"""


@pytest.fixture
def rollout_app(tmp_path: Path) -> Iterator[App]:
    port = free_port()
    (tmp_path / "deploy.toml").write_text(rollout_config(port))
    app = App.load(tmp_path / "deploy.toml")
    app.port = port  # type: ignore[attr-defined]
    try:
        yield app
    finally:
        app.close()
        from deploy_mcp.targets.local import cli

        cli.stop(app.project, "hello")
        assert wait_until_gone(tmp_path) == [], "processes left running"


async def settle(client: Client, deployment_id: str) -> dict:
    import anyio

    for _ in range(240):
        status = await client.call_tool("deployment_status", {"deployment_id": deployment_id})
        assert not status.is_error, status.content
        record = status.structured_content["record"]
        if record["status"] not in ("pending", "in_progress"):
            return record
        await anyio.sleep(0.25)
    raise AssertionError(f"{deployment_id} did not settle")


@pytest.mark.anyio
async def test_rollback_across_a_roll_forward_only_release_is_refused(rollout_app: App) -> None:
    url = f"http://127.0.0.1:{rollout_app.port}/"  # type: ignore[attr-defined]
    async with Client(build_server(rollout_app)) as client:
        with BackgroundLoad(url, rate=100):
            records = []
            for version in ("1.0.0", "2.0.0"):
                started = await client.call_tool(
                    "deploy", {"service": "hello", "version": version, "environment": "staging"}
                )
                assert not started.is_error, started.content
                records.append(await settle(client, started.structured_content["record"]["id"]))
        first, forward = records
        assert first["status"] == "succeeded" and first["validation"]["passed"], first
        assert forward["status"] == "succeeded", forward
        assert forward["roll_forward_only"] is True and first["roll_forward_only"] is False

        refused = await client.call_tool(
            "rollback", {"service": "hello", "environment": "staging", "reason": "errors after 2.0.0"}
        )
        history = await client.call_tool("deployment_history", {"service": "hello"})
    assert refused.is_error
    message = refused.content[0].text
    assert "Fix forward" in message and forward["id"] in message and "migrations_irreversible" in message
    assert "Traceback" not in message
    assert [r["version"] for r in history.structured_content["records"]] == ["2.0.0", "1.0.0"], "nothing new ran"
