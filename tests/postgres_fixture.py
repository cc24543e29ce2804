"""A real PostgreSQL for tests: one throwaway cluster per session on 127.0.0.1, a fresh database per test.

Import the fixtures into a test module (``from postgres_fixture import database, make_database, postgres``).
The cluster is made with ``initdb`` in a temporary folder (trust authentication, user ``postgres``, UTF8, no
fsync: nothing here must survive a crash) and started on a free port, with its unix socket in that folder so it
never meets a system cluster's. Start-up is awaited by connecting, never for a fixed time; at the end of the
session it is stopped with a fast shutdown and its folder removed.

initdb and postgres refuse to run as root, and CI runs as root: there they run as the ``postgres`` system user
(Debian's package creates it) through ``runuser``, in a folder under /tmp that user owns (pytest's own temporary
folders sit under a root-only directory it could not enter).

The helpers apply migrations the way a migration tool does (``run_file``: one transaction, unless the file says
it cannot run in one), describe a schema in a form two databases can be compared by (``schema``), and tell
whether a statement would wait for a lock someone else holds (``blocked``, ``lock_modes``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlparse
from conftest import free_port, require_component

try:
    import psycopg
except ImportError:  # reported through require_component when a test asks for the server
    psycopg = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from psycopg import Connection

SERVER_USER = "postgres"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
TOOLS = ("initdb", "postgres", "pg_ctl")
UTF8_C = ("-E", "UTF8", "--locale=C")  # UTF8 like production databases; the C locale exists on every machine
LOCK_WAIT = "500ms"  # how long a probe waits for a lock before it counts as blocked
# The table lock modes that conflict with RowExclusiveLock, which every INSERT, UPDATE and DELETE takes: a
# statement holding one of these stops all writes to the table until its transaction ends.
WRITE_CONFLICTS = frozenset({"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"})

# A file a migration tool would not wrap in a transaction: goose, sql-migrate and dbmate say so with a marker;
# golang-migrate users put each CONCURRENTLY statement in a file of its own, which cannot run in one anyway.
_NO_TRANSACTION = re.compile(
    r"--\s*\+goose\s+NO\s+TRANSACTION|--\s*\+migrate\s+(?:up|down)\s+notransaction|"
    r"--\s*migrate:(?:up|down)\s+transaction:false|\bCONCURRENTLY\b",
    re.IGNORECASE,
)
_GOOSE_MARKER = re.compile(r"^\s*--\s*\+goose\s+(up|down)\b", re.IGNORECASE)


# -- the server ----------------------------------------------------------------------------------------------------


def find_binaries() -> dict[str, Path] | None:
    """initdb, postgres and pg_ctl from PATH when all three are there, else from the newest of Debian's
    /usr/lib/postgresql/<version>/bin (the package does not put them on PATH)."""
    on_path = {tool: shutil.which(tool) for tool in TOOLS}
    if all(on_path.values()):
        return {tool: Path(found) for tool, found in on_path.items() if found}
    versions = [d for d in DEBIAN_BINARIES.glob("*/bin") if d.parent.name.replace(".", "").isdigit()]
    for folder in sorted(versions, key=lambda d: [int(p) for p in d.parent.name.split(".")], reverse=True):
        if all((folder / tool).is_file() for tool in TOOLS):
            return {tool: folder / tool for tool in TOOLS}
    return None


class PostgresServer:
    """One running cluster; ``connect`` reaches it over TCP as the superuser ``postgres``."""

    def __init__(self, binaries: dict[str, Path]) -> None:
        self.binaries = binaries
        self.as_root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="deploy-mcp-pg-", dir="/tmp" if self.as_root else None))
        self.data = self.folder / "data"
        self.sockets = self.folder / "socket"
        self.log_file = self.folder / "postgres.log"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def _as_owner(self, args: list[str | Path]) -> list[str]:
        """Root cannot run the server; the postgres system user can, through runuser."""
        command = [str(a) for a in args]
        return ["runuser", "-u", SERVER_USER, "--", *command] if self.as_root else command

    def start(self) -> PostgresServer:
        self.sockets.mkdir()
        if self.as_root:
            for path in (self.folder, self.sockets):
                shutil.chown(path, SERVER_USER, SERVER_USER)
        initdb = subprocess.run(
            self._as_owner(
                [self.binaries["initdb"], "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", *UTF8_C]
            ),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [item for name, value in settings.items() for item in ("-c", f"{name}={value}")]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                self._as_owner(
                    [self.binaries["postgres"], "-D", self.data, "-p", str(self.port), "-k", self.sockets, *options]
                ),
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._process.returncode}:\n{self.log()}")
            try:
                with psycopg.connect(self.conninfo("postgres", connect_timeout=1), autocommit=True) as conn:
                    conn.execute("SELECT 1")
                    return
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections within {START_TIMEOUT:g} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""

    def conninfo(self, dbname: str, connect_timeout: int = 5) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout={connect_timeout}"

    def connect(self, dbname: str = "postgres", *, autocommit: bool = True) -> Connection:
        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit)

    def stop(self) -> None:
        """Fast shutdown (pg_ctl signals the postmaster itself: runuser would SIGKILL it two seconds after a
        SIGTERM); the postmaster is killed only when it does not stop in time. Then the folder goes."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    self._as_owner([self.binaries["pg_ctl"], "stop", "-D", self.data, "-m", "fast", "-w"]),
                    cwd=self.folder,
                    capture_output=True,
                    timeout=STOP_TIMEOUT,
                    check=False,
                )
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill_postmaster()
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        """The postmaster's own pid (our child may be runuser), from the pid file it writes at start."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)


class Database:
    """A database of its own for one test; every connection made through it is closed when it is dropped."""

    def __init__(self, server: PostgresServer, name: str) -> None:
        self.server = server
        self.name = name
        self._connections: list[Connection] = []

    def connect(self, *, autocommit: bool = True) -> Connection:
        """Autocommit by default, as a migration tool's connection: ``run_file`` opens the transactions."""
        conn = self.server.connect(self.name, autocommit=autocommit)
        self._connections.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._connections:
            with contextlib.suppress(Exception):
                conn.close()
        self._connections.clear()


def _require_server() -> dict[str, Path]:
    require_component("psycopg", psycopg is not None, "pip install 'psycopg[binary]' (the test extras have it)")
    binaries = find_binaries()
    require_component(
        "postgresql",
        binaries is not None,
        "install PostgreSQL (Debian: apt-get install postgresql; scripts/setup.sh does) or put initdb, postgres "
        "and pg_ctl on PATH",
    )
    assert binaries is not None
    if os.geteuid() == 0:
        require_component(
            "postgres system user",
            shutil.which("runuser") is not None and _user_exists(SERVER_USER),
            "as root the server runs as the 'postgres' user through runuser; Debian's postgresql package creates it",
        )
    return binaries


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's cluster, started on first use and stopped (folder removed) when the session ends."""
    server = PostgresServer(_require_server())
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def make_database(postgres: PostgresServer) -> Iterator[Callable[[], Database]]:
    """``make_database()`` -> a new empty database; all of them are dropped after the test."""
    made: list[Database] = []

    def make() -> Database:
        name = f"t_{secrets.token_hex(6)}"
        with postgres.connect() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        database = Database(postgres, name)
        made.append(database)
        return database

    try:
        yield make
    finally:
        with postgres.connect() as admin:
            for database in made:
                database.close()
                admin.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


@pytest.fixture
def database(make_database: Callable[[], Database]) -> Database:
    """One fresh database for the test."""
    return make_database()


# -- applying migrations -------------------------------------------------------------------------------------------


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql``, comments dropped, for running one by one outside a transaction (a string of
    several statements sent at once runs as one implicit transaction, where CONCURRENTLY is refused)."""
    pieces = sqlparse.split(sql, strip_semicolon=True)
    return [text for piece in pieces if (text := sqlparse.format(piece, strip_comments=True).strip())]


def migration_sql(path: Path, step: str = "up") -> str:
    """The SQL of one step: the whole file for ``NNN_name.up.sql`` / ``.down.sql``, the section after
    ``-- +goose Up`` (or Down) for a goose file."""
    text = path.read_text(encoding="utf-8")
    if not any(_GOOSE_MARKER.match(line) for line in text.splitlines()):
        return text
    kept: list[str] = []
    section: str | None = None
    for line in text.splitlines(keepends=True):
        if marker := _GOOSE_MARKER.match(line):
            section = marker.group(1).lower()
        elif section == step:
            kept.append(line)
    return "".join(kept)


def transactional(path: Path) -> bool:
    """Whether a migration tool would run this file in a transaction."""
    return not _NO_TRANSACTION.search(path.read_text(encoding="utf-8"))


def run_sql(conn: Connection, sql: str, *, in_transaction: bool = True) -> None:
    """Run ``sql`` statement by statement, in one transaction or (for CONCURRENTLY) each on its own."""
    if not conn.autocommit:
        raise ValueError("run_sql needs an autocommit connection: it opens the transaction itself")
    statements = split_statements(sql)
    if in_transaction:
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)
    else:
        for statement in statements:
            conn.execute(statement)


def run_file(conn: Connection, path: Path, step: str = "up") -> None:
    """Apply one step of a migration file as a migration tool would."""
    run_sql(conn, migration_sql(path, step), in_transaction=transactional(path))


# -- looking at the result -----------------------------------------------------------------------------------------

_USER_NAMESPACE = "{n}.nspname NOT IN ('pg_catalog', 'information_schema') AND {n}.nspname NOT LIKE 'pg\\_%'"
# One query per kind of object, each answering one line of DDL-like text per object.
_SCHEMA_QUERIES = (
    f"""
    SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
                WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' ELSE 'foreign table' END
           || ' ' || n.nspname || '.' || c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_USER_NAMESPACE.format(n="n")}""",
    f"""
    SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
           || CASE WHEN a.attgenerated = 's'
                   THEN ' GENERATED ALWAYS AS (' || pg_get_expr(d.adbin, d.adrelid) || ') STORED'
                   ELSE coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') END
           || CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'
                                 WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND {_USER_NAMESPACE.format(n="n")}""",
    f"""
    SELECT 'constraint ' || coalesce(nullif(co.conrelid, 0)::regclass::text, co.contypid::regtype::text)
           || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
           || CASE WHEN co.convalidated THEN '' ELSE ' NOT VALID' END
    FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
    WHERE {_USER_NAMESPACE.format(n="n")}""",
    f"""
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {_USER_NAMESPACE.format(n="n")}""",
    f"""
    SELECT 'type ' || n.nspname || '.' || t.typname || CASE t.typtype
             WHEN 'e' THEN ' ENUM (' || (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
                                         FROM pg_enum e WHERE e.enumtypid = t.oid) || ')'
             ELSE ' DOMAIN ' || format_type(t.typbasetype, t.typtypmod) END
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typtype IN ('e', 'd') AND {_USER_NAMESPACE.format(n="n")}""",
)


def schema(conn: Connection) -> str:
    """Every table, sequence, column (type, NOT NULL, default), constraint (NOT VALID when not yet validated),
    index (INVALID when a concurrent build failed), enum and domain, one sorted line each: column order and the
    order things were created in do not count, so two databases compare by what a query would meet."""
    lines = [line for query in _SCHEMA_QUERIES for (line,) in conn.execute(query).fetchall()]
    return "\n".join(sorted(lines))


def lock_modes(conn: Connection, table: str, pid: int) -> set[str]:
    """The locks backend ``pid`` holds (granted) on ``table``: AccessExclusiveLock, ShareLock, ..."""
    rows = conn.execute(
        "SELECT mode FROM pg_locks WHERE relation = %s::regclass AND pid = %s AND granted", (table, pid)
    ).fetchall()
    return {mode for (mode,) in rows}


def blocked(database: Database, sql: str, *, wait: str = LOCK_WAIT) -> bool:
    """True when ``sql``, run on a fresh connection with lock_timeout = ``wait``, fails for want of a lock; False
    when it succeeds (it commits). A write that has to wait is what a user sees as a stalled request."""
    with database.server.connect(database.name) as conn:
        conn.execute(f"SET lock_timeout = '{wait}'")
        try:
            conn.execute(sql)
        except psycopg.errors.LockNotAvailable:
            return True
    return False
