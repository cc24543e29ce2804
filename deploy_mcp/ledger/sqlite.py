"""The default ledger: one SQLite file in WAL mode at ``.deploy/ledger.db`` beside deploy.toml.

Why it is safe across processes (the MCP server, a CLI in a terminal, a second agent):

- WAL lets readers run while one process writes, and ``busy_timeout`` makes a second writer wait its turn instead
  of failing at once.
- Every read-modify-write (id allocation, update, event numbering, lock takeover) runs in ``BEGIN IMMEDIATE``,
  which takes the write lock before the first read. A deferred transaction would read, then fail to upgrade
  (SQLITE_BUSY_SNAPSHOT, which busy_timeout does not retry) or, worse, two processes would read the same "next"
  number. ``synchronous = FULL`` because a ledger that forgets a committed deployment after a power cut is wrong.

Why one connection and a lock, not a connection per thread: the server calls the ledger from asyncio through a
thread pool whose threads come and go, so per-thread connections would leak; SQLite serialises writers anyway,
and the calls are milliseconds long. ``check_same_thread=False`` plus a ``threading.RLock`` around every call
keeps two threads' transactions from interleaving on the shared connection.
"""

from __future__ import annotations

import builtins  # `list` in these classes is the method: annotations after it name the type explicitly
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from deploy_mcp.config.loader import STATE_DIR
from deploy_mcp.core.private import FOLDER_MODE, create_private_file, private_folder, tighten
from deploy_mcp.core.records import DeploymentRecord, Event, Status, utcnow
from deploy_mcp.ledger.base import (
    PROVISIONAL_CLAIM_LEASE,
    PROVISIONAL_CLAIM_PREFIX,
    Approval,
    LedgerError,
    LockState,
    as_status,
    describe_validation,
)
from deploy_mcp.ledger.base import (
    decode_record as _decode,
)
from deploy_mcp.ledger.base import (
    require_lock_args as _require_lock_args,
)
from deploy_mcp.ledger.base import (
    validate_record as _validate,
)
from deploy_mcp.ledger.feed import Subscribers
from deploy_mcp.ledger.ids import format_id, id_day, parse_id
from deploy_mcp.ledger.migrations import SCHEMA_VERSION, UNFINISHED_SQL, migrate, schema_version

DEFAULT_BUSY_TIMEOUT = 10.0
_PLACEHOLDER_ID = "deploy-unallocated"
_NEWEST_FIRST = "ORDER BY deployed_at DESC, id_day DESC, id_number DESC"


class SqliteLedger:
    """The ``Ledger`` protocol over one SQLite file; see the module docstring for the concurrency design."""

    def __init__(self, path: Path | str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._subscribers = Subscribers()
        self._conn: sqlite3.Connection | None = self._connect()

    # connection and transactions

    def _connect(self) -> sqlite3.Connection:
        try:
            private_folder(self._path.parent)  # 0700: the ledger says who approved what
            if self._path.parent.name == STATE_DIR:
                tighten(self._path.parent, FOLDER_MODE)  # a .deploy made by an older version was 0755
            self._refuse_emptied()
            create_private_file(self._path)  # 0600 before SQLite creates it (its -wal and -shm copy the mode)
        except OSError as exc:
            raise LedgerError(
                f"cannot create the ledger folder {self._path.parent}: {exc.strerror}; check its permissions"
            ) from None
        try:
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise LedgerError(
                f"cannot open the ledger {self._path}: {exc}; check the path and its permissions"
            ) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            self._refuse_newer(schema_version(conn))
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerError(
                    f"the ledger {self._path} cannot use WAL mode (SQLite chose {mode!r}); "
                    "keep the .deploy folder on a local disk, not a network share"
                )
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._refuse_newer(migrate(conn))
        except LedgerError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerError(
                f"cannot open the ledger {self._path}: {exc}; if it is not a deploy-mcp ledger, move it aside "
                "and a new one will be created"
            ) from None
        return conn

    def _refuse_emptied(self) -> None:
        """A zero-byte ledger in a folder with history was truncated; opening it would restart ids and history."""
        try:
            if self._path.stat().st_size:
                return
        except FileNotFoundError:
            return
        others = sorted(p.name for p in self._path.parent.iterdir() if not p.name.startswith(self._path.name))
        if not others:
            return  # a new folder: a ledger that was being created
        raise LedgerError(
            f"the ledger {self._path} is empty (0 bytes), but {self._path.parent} holds earlier state "
            f"({', '.join(others[:5])}): the file was truncated or replaced, and using it would start deployment "
            f"ids and history again. Restore it from a backup; or, to start a new ledger on purpose, move it aside "
            f"(mv {self._path} {self._path}.empty)"
        )

    def _refuse_newer(self, found: int) -> None:
        if found > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {self._path} has schema version {found}, written by a newer deploy-mcp; this one "
                f"knows versions up to {SCHEMA_VERSION}. Upgrade deploy-mcp (pip install -U deploy-mcp) to use it"
            )

    @contextmanager
    def _transaction(self, what: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction under the thread lock; any failure rolls back everything the block did."""
        with self._lock:
            if self._conn is None:
                raise LedgerError(f"{what}: the ledger {self._path} is closed; open it again with open_ledger()")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._storage_error(what, exc) from None
                raise

    def _storage_error(self, what: str, exc: sqlite3.Error) -> LedgerError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return LedgerError(
                f"{what}: the ledger {self._path} is busy: another deploy-mcp process is writing "
                f"(waited up to {self._busy_timeout:g} s); try again"
            )
        return LedgerError(f"{what}: the ledger {self._path} failed: {text}")

    @property
    def location(self) -> str:
        return str(self._path)

    @property
    def schema_version(self) -> int:
        with self._transaction("read the schema version", write=False) as conn:
            return schema_version(conn)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteLedger({str(self._path)!r})"

    # records

    def create(self, *, service: str, version: str, environment: str, strategy: str, **fields: Any) -> DeploymentRecord:
        if "id" in fields:
            raise LedgerError("create: id is allocated by the ledger; leave it out")
        values = {"service": service, "version": version, "environment": environment, "strategy": strategy}
        draft = _validate({"id": _PLACEHOLDER_ID, **values, **fields}, "create")
        day = id_day(draft.deployed_at)
        with self._transaction("create a deployment record", write=True) as conn:
            number = conn.execute(
                "SELECT COALESCE(MAX(id_number), 0) + 1 FROM deployments WHERE id_day = ?", (day.isoformat(),)
            ).fetchone()[0]
            record = draft.model_copy(update={"id": format_id(day, number)})
            conn.execute(
                "INSERT INTO deployments (id, id_day, id_number, service, environment, version, status, "
                "deployed_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, day.isoformat(), number, *_columns(record)),
            )
        return record

    def get(self, deployment_id: str) -> DeploymentRecord | None:
        with self._transaction(f"read {deployment_id}", write=False) as conn:
            return self._read(conn, deployment_id)

    def save(self, record: DeploymentRecord) -> None:
        if not isinstance(record, DeploymentRecord):
            raise LedgerError(f"save: expected a DeploymentRecord, got {type(record).__name__}")
        # Validate again: fields assigned after construction are not checked by the model.
        checked = _validate(record.model_dump(warnings=False), f"save {record.id}")
        with self._transaction(f"save {record.id}", write=True) as conn:
            self._write(conn, checked, "save")

    def update(self, deployment_id: str, **changes: Any) -> DeploymentRecord:
        if changes.get("id", deployment_id) != deployment_id:
            raise LedgerError(f"update {deployment_id}: id cannot change; create a new record instead")
        with self._transaction(f"update {deployment_id}", write=True) as conn:
            current = self._read(conn, deployment_id)
            if current is None:
                raise self._unknown("update", deployment_id)
            updated = _validate(current.model_dump() | changes, f"update {deployment_id}")
            self._write(conn, updated, "update")
        return updated

    def list(
        self,
        *,
        service: str | None = None,
        environment: str | None = None,
        status: Status | str | None = None,
        limit: int = 20,
    ) -> list[DeploymentRecord]:
        wanted = as_status(status)
        if limit < 1:
            raise LedgerError(f"limit: must be at least 1 (got {limit})")
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("service", service), ("environment", environment), ("status", wanted)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(str(value))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._transaction("list deployments", write=False) as conn:
            rows = conn.execute(f"SELECT record FROM deployments {where} {_NEWEST_FIRST} LIMIT ?", (*params, limit))
            return [_decode(row[0]) for row in rows]

    def last_good(self, service: str, environment: str, *, before: str | None = None) -> DeploymentRecord | None:
        sql = (
            "SELECT record FROM deployments WHERE service = ? AND environment = ? AND status = ? "
            "AND json_extract(record, '$.validation.passed') = 1"
        )
        params: list[Any] = [service, environment, Status.SUCCEEDED.value]
        with self._transaction(f"find the last good deployment of {service}/{environment}", write=False) as conn:
            if before is not None:
                anchor = conn.execute(
                    "SELECT deployed_at, id_day, id_number FROM deployments WHERE id = ?", (before,)
                ).fetchone()
                if anchor is None:
                    raise self._unknown("last_good before", before)
                sql += " AND (deployed_at, id_day, id_number) < (?, ?, ?)"
                params.extend(anchor)
            row = conn.execute(f"{sql} {_NEWEST_FIRST} LIMIT 1", params).fetchone()
            return _decode(row[0]) if row else None

    def unfinished(self) -> builtins.list[DeploymentRecord]:
        # Literals, not parameters: SQLite uses the partial index deployments_unfinished only for a condition it
        # can see implies the index's.
        with self._transaction("list unfinished deployments", write=False) as conn:
            rows = conn.execute(f"SELECT record FROM deployments WHERE status IN ({UNFINISHED_SQL}) {_NEWEST_FIRST}")
            return [_decode(row[0]) for row in rows]

    def _read(self, conn: sqlite3.Connection, deployment_id: str) -> DeploymentRecord | None:
        row = conn.execute("SELECT record FROM deployments WHERE id = ?", (deployment_id,)).fetchone()
        return _decode(row[0]) if row else None

    def _write(self, conn: sqlite3.Connection, record: DeploymentRecord, verb: str) -> None:
        cursor = conn.execute(
            "UPDATE deployments SET service = ?, environment = ?, version = ?, status = ?, deployed_at = ?, "
            "record = ? WHERE id = ?",
            (*_columns(record), record.id),
        )
        if cursor.rowcount == 0:
            raise self._unknown(verb, record.id)

    def _unknown(self, verb: str, deployment_id: str) -> LedgerError:
        hint = "" if parse_id(deployment_id) else " (ids look like deploy-YYYY-MM-DD-NNN)"
        return LedgerError(
            f"{verb}: no deployment {deployment_id!r} in the ledger {self._path}{hint}; "
            "deployment_history lists the ids"
        )

    # event log

    def append_event(self, deployment_id: str, kind: str, message: str, data: dict[str, Any] | None = None) -> Event:
        with self._transaction(f"append an event to {deployment_id}", write=True) as conn:
            if conn.execute("SELECT 1 FROM deployments WHERE id = ?", (deployment_id,)).fetchone() is None:
                raise self._unknown("append_event", deployment_id)
            seq = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE deployment_id = ?", (deployment_id,)
            ).fetchone()[0]
            try:
                event = Event(
                    deployment_id=deployment_id, seq=seq, at=utcnow(), kind=kind, message=message, data=data or {}
                )
                stored = event.model_dump(mode="json")
            except ValidationError as exc:
                raise LedgerError(f"append_event {deployment_id}: {describe_validation(exc)}") from None
            except PydanticSerializationError as exc:
                raise LedgerError(
                    f"append_event {deployment_id}: data must hold only JSON values (text, numbers, booleans, "
                    f"lists, objects, datetimes): {exc}"
                ) from None
            conn.execute(
                "INSERT INTO events (deployment_id, seq, at, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                (deployment_id, seq, _utc_text(event.at), kind, message, json.dumps(stored["data"])),
            )
        self._subscribers.wake(deployment_id, kind)
        return event

    @property
    def pushes_events(self) -> bool:
        """Appends of this process only: another process's request is read at the waiter's next poll."""
        return False

    def subscribe(
        self, deployment_id: str, wake: threading.Event, kinds: frozenset[str] | None = None
    ) -> Callable[[], None]:
        return self._subscribers.add(deployment_id, wake, kinds)

    def events(self, deployment_id: str) -> builtins.list[Event]:
        with self._transaction(f"read the events of {deployment_id}", write=False) as conn:
            rows = conn.execute(
                "SELECT seq, at, kind, message, data FROM events WHERE deployment_id = ? ORDER BY seq",
                (deployment_id,),
            ).fetchall()
        return [
            Event(
                deployment_id=deployment_id,
                seq=seq,
                at=datetime.fromisoformat(at),
                kind=kind,
                message=message,
                data=json.loads(data),
            )
            for seq, at, kind, message, data in rows
        ]

    # locks

    def acquire_lock(
        self,
        service: str,
        environment: str,
        holder: str,
        *,
        deployment_id: str | None = None,
        lease_seconds: float = 30,
    ) -> LockState:
        _require_lock_args(holder, lease_seconds)
        with self._transaction(f"lock {service}/{environment}", write=True) as conn:
            now = time.time()
            row = _lock_row(conn, service, environment)
            live = row is not None and row[3] > now
            if live and row[0] != holder:
                return _lock_state(False, service, environment, row)
            renewing = live and row[0] == holder
            held_since = row[2] if renewing else now
            if renewing and deployment_id is None:
                deployment_id = row[1]
            claim = (holder, deployment_id, held_since, now + lease_seconds)
            conn.execute(
                "INSERT INTO locks (service, environment, holder, deployment_id, acquired_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (service, environment) DO UPDATE SET "
                "holder = excluded.holder, deployment_id = excluded.deployment_id, "
                "acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
                (service, environment, *claim),
            )
            return _lock_state(True, service, environment, claim)

    def renew_lock(self, service: str, environment: str, holder: str, lease_seconds: float = 30) -> bool:
        """Extend the lease while the row still names ``holder``.

        A lapsed lease that nobody took over is extended too: exclusivity was never broken, because taking over
        rewrites the holder in the same transaction that checks expiry.
        """
        _require_lock_args(holder, lease_seconds)
        with self._transaction(f"renew the lock of {service}/{environment}", write=True) as conn:
            cursor = conn.execute(
                "UPDATE locks SET expires_at = ? WHERE service = ? AND environment = ? AND holder = ?",
                (time.time() + lease_seconds, service, environment, holder),
            )
            return cursor.rowcount == 1

    def release_lock(self, service: str, environment: str, holder: str) -> bool:
        with self._transaction(f"release the lock of {service}/{environment}", write=True) as conn:
            cursor = conn.execute(
                "DELETE FROM locks WHERE service = ? AND environment = ? AND holder = ?",
                (service, environment, holder),
            )
            return cursor.rowcount == 1

    def lock_state(self, service: str, environment: str) -> LockState | None:
        """The live holder, or None when the lock is free or its lease has run out."""
        with self._transaction(f"read the lock of {service}/{environment}", write=False) as conn:
            row = _lock_row(conn, service, environment)
        if row is None or row[3] <= time.time():
            return None
        return _lock_state(True, service, environment, row)

    # approvals

    def add_approval(
        self,
        change_id: str,
        service: str,
        environment: str,
        approved_by: str,
        expires_at: datetime | None = None,
        version: str | None = None,
    ) -> Approval:
        fields = {"change_id": change_id, "service": service, "environment": environment, "approved_by": approved_by}
        for name, value in fields.items():
            if not isinstance(value, str) or not value.strip():
                raise LedgerError(f"add_approval: {name}: must be non-empty text (got {value!r})")
        if version is not None and (not isinstance(version, str) or not version.strip()):
            raise LedgerError(
                f"add_approval: version: must be non-empty text, or None for any version (got {version!r})"
            )
        approved_at = utcnow()
        expiry = _utc_text(expires_at) if expires_at is not None else None
        with self._transaction(f"record the approval of {change_id}", write=True) as conn:
            cursor = conn.execute(
                "INSERT INTO approvals (change_id, service, environment, approved_by, approved_at, expires_at, "
                "version) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (change_id, service, environment, approved_by, _utc_text(approved_at), expiry, version),
            )
            approval_id = cursor.lastrowid
        return Approval(
            id=approval_id,
            **fields,
            approved_at=approved_at,
            expires_at=datetime.fromisoformat(expiry) if expiry else None,
            version=version,
        )

    def find_approval(
        self,
        change_id: str,
        service: str,
        environment: str,
        *,
        version: str | None = None,
        include_used: bool = False,
    ) -> Approval | None:
        now = utcnow()
        clauses = ["change_id = ?", "service = ?", "environment = ?", "(expires_at IS NULL OR expires_at > ?)"]
        params: list[Any] = [change_id, service, environment, _utc_text(now)]
        if version is not None:
            clauses.append("(version IS NULL OR version = ?)")
            params.append(version)
        if not include_used:
            clauses.append(_UNCLAIMED)
            params.extend(_unclaimed_params(now))
        with self._transaction(f"find the approval of {change_id}", write=False) as conn:
            row = conn.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT 1",
                params,
            ).fetchone()
        return _approval(row, _stale_before(now)) if row else None

    def use_approval(self, approval_id: int, used_by: str, *, replacing: str | None = None) -> Approval | None:
        if not isinstance(used_by, str) or not used_by.strip():
            raise LedgerError(f"use_approval: used_by: must name the deployment (got {used_by!r})")
        now = utcnow()
        with self._transaction(f"spend approval {approval_id} on {used_by}", write=True) as conn:
            if replacing is None:
                moment = _utc_text(now)
                # Expiry and a stale provisional claim are checked here, in the write transaction, not only when
                # the approval was found: of two deploys taking over one stale claim, one wins.
                cursor = conn.execute(
                    f"UPDATE approvals SET used_by = ?, used_at = ? WHERE id = ? AND {_UNCLAIMED} "
                    "AND (expires_at IS NULL OR expires_at > ?)",
                    (used_by, moment, approval_id, *_unclaimed_params(now), moment),
                )
            else:
                cursor = conn.execute(
                    "UPDATE approvals SET used_by = ? WHERE id = ? AND used_by = ?", (used_by, approval_id, replacing)
                )
            if cursor.rowcount != 1:
                return None
            row = conn.execute(f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        return _approval(row, _stale_before(now))

    def release_approval(self, approval_id: int, used_by: str) -> bool:
        with self._transaction(f"give back approval {approval_id}", write=True) as conn:
            cursor = conn.execute(
                "UPDATE approvals SET used_by = NULL, used_at = NULL WHERE id = ? AND used_by = ?",
                (approval_id, used_by),
            )
            return cursor.rowcount == 1

    def list_approvals(
        self,
        *,
        change_id: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        limit: int = 50,
    ) -> builtins.list[Approval]:
        """Every matching approval, expired ones included, newest first."""
        if limit < 1:
            raise LedgerError(f"limit: must be at least 1 (got {limit})")
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("change_id", change_id), ("service", service), ("environment", environment)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        stale_before = _stale_before(utcnow())
        with self._transaction("list approvals", write=False) as conn:
            rows = conn.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals {where} ORDER BY id DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [_approval(row, stale_before) for row in rows]


_APPROVAL_COLUMNS = (
    "id, change_id, service, environment, approved_by, approved_at, expires_at, version, used_by, used_at"
)

# Unclaimed: nobody holds it, or a provisional claim outlived its lease (its process died before handing the
# approval to its deployment). In SQL, so taking over a stale claim is one atomic UPDATE. Parameters:
# `_unclaimed_params`.
_UNCLAIMED = "(used_by IS NULL OR (substr(used_by, 1, ?) = ? AND (used_at IS NULL OR used_at < ?)))"


def _stale_before(now: datetime) -> str:
    """The claim time before which a provisional claim no longer holds its approval, as stored text."""
    return _utc_text(now - timedelta(seconds=PROVISIONAL_CLAIM_LEASE))


def _unclaimed_params(now: datetime) -> tuple[int, str, str]:
    return len(PROVISIONAL_CLAIM_PREFIX), PROVISIONAL_CLAIM_PREFIX, _stale_before(now)


def _utc_text(moment: datetime) -> str:
    """Fixed-width UTC ISO text, so SQLite's string order is time order; a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _columns(record: DeploymentRecord) -> tuple[str, str, str, str, str, str]:
    """The indexed copies of the record's fields, in the order the SQL statements list them."""
    return (
        record.service,
        record.environment,
        record.version,
        record.status.value,
        _utc_text(record.deployed_at),
        record.model_dump_json(),
    )


def _lock_row(conn: sqlite3.Connection, service: str, environment: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT holder, deployment_id, acquired_at, expires_at FROM locks WHERE service = ? AND environment = ?",
        (service, environment),
    ).fetchone()


def _lock_state(acquired: bool, service: str, environment: str, row: tuple[Any, ...]) -> LockState:
    holder, deployment_id, acquired_at, expires_at = row
    return LockState(
        acquired=acquired,
        service=service,
        environment=environment,
        holder=holder,
        deployment_id=deployment_id,
        acquired_at=datetime.fromtimestamp(acquired_at, UTC),
        expires_at=datetime.fromtimestamp(expires_at, UTC),
    )


def _approval(row: tuple[Any, ...], stale_before: str) -> Approval:
    """The approval of a row; a provisional claim older than ``stale_before`` is shown as no claim, as it counts."""
    approval_id, change_id, service, environment, approved_by, approved_at, expires_at, version, used_by, used_at = row
    if used_by is not None and used_by.startswith(PROVISIONAL_CLAIM_PREFIX) and (used_at or "") < stale_before:
        used_by = used_at = None
    return Approval(
        id=approval_id,
        change_id=change_id,
        service=service,
        environment=environment,
        approved_by=approved_by,
        approved_at=datetime.fromisoformat(approved_at),
        expires_at=datetime.fromisoformat(expires_at) if expires_at else None,
        version=version,
        used_by=used_by,
        used_at=datetime.fromisoformat(used_at) if used_at else None,
    )
