"""The team ledger: one PostgreSQL database shared by several deploy-mcp server replicas (psycopg 3).

Three connections per process, each with one job:

- the **store** connection runs every read and write: a write is one transaction per call (READ COMMITTED; every
  read-modify-write locks the row it changes first, so two replicas never lose an update or hand out one id
  twice), a read of one statement runs on its own in autocommit (one round trip) and again once if the connection
  had died;
- the **lock session** holds a session-level advisory lock per deployment this process drives. The lock row
  (holder, lease) says who drives a service/environment and until when; the advisory lock makes it impossible for
  two live replicas to drive it at once even when a lease lapses under a stalled heartbeat, because only a dead
  session (a killed replica: its TCP connection closes and PostgreSQL ends the backend) lets go of it;
- the **listener** (started on the first subscription) LISTENs on ``deploy_mcp_events``: every append sends a
  NOTIFY in its own transaction, so control requests (pause, promote, abort) and their answers reach the replica
  driving a deployment at once, not at its next poll. After a reconnect every waiter is woken to read again,
  because a notification sent while the listener was away is lost.

The password never appears in a message: ``location`` is the URL with ``***`` for it, and driver errors are scrubbed.
"""

from __future__ import annotations

import builtins  # `list` in these classes is the method: annotations after it name the type explicitly
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from deploy_mcp.core.records import DeploymentRecord, Event, Status, utcnow
from deploy_mcp.ledger.base import (
    PROVISIONAL_CLAIM_LEASE,
    PROVISIONAL_CLAIM_PREFIX,
    UNFINISHED_STATUSES,
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
from deploy_mcp.ledger.dsn import INSTALL_HINT, LedgerUrl
from deploy_mcp.ledger.feed import Subscribers
from deploy_mcp.ledger.ids import format_id, id_day, parse_id
from deploy_mcp.ledger.pg_schema import EVENTS_CHANNEL, SCHEMA_VERSION, migrate

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("deploy_mcp.ledger")
_T = TypeVar("_T")

CONNECT_TIMEOUT = 10
LISTEN_TICK = 0.5
"""How often the listener looks up from waiting to see whether it should stop; it reads notifications at once."""
RECONNECT_DELAY = 1.0
_PLACEHOLDER_ID = "deploy-unallocated"
_NEWEST_FIRST = "ORDER BY deployed_at DESC, id_day DESC, id_number DESC"
_ID_LOCK_NAMESPACE = "deploy-mcp id "
_LOCK_NAMESPACE = "deploy-mcp lock "
_APPROVAL_COLUMNS = (
    "id, change_id, service, environment, approved_by, approved_at, expires_at, version, used_by, used_at"
)
# As in the SQLite backend: nobody holds it, or a provisional claim outlived its lease.
_UNCLAIMED = "(used_by IS NULL OR (starts_with(used_by, %s) AND (used_at IS NULL OR used_at < %s)))"


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise LedgerError(
            f"the ledger is a PostgreSQL database, which needs the psycopg driver: {INSTALL_HINT}"
        ) from None
    return psycopg


def advisory_key(namespace: str, *parts: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock``: the same text gives the same key in every replica."""
    digest = hashlib.blake2b("\0".join((namespace, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresLedger:
    """The ``Ledger`` protocol over one PostgreSQL database; see the module docstring for the design."""

    def __init__(self, where: LedgerUrl | str, *, connect_timeout: int = CONNECT_TIMEOUT) -> None:
        self._url = where if isinstance(where, LedgerUrl) else LedgerUrl(url=where, password=None, source="ledger")
        self._pg = _psycopg()
        self._connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._subscribers = Subscribers()
        self._closed = False
        self._conn: psycopg.Connection | None = None
        self._lock_conn: psycopg.Connection | None = None
        self._advisory: dict[int, str] = {}  # advisory key -> the holder of ours it was taken for
        self._listener: threading.Thread | None = None
        self._stop_listening = threading.Event()
        with self._lock:
            conn = self._store()
            try:
                found = migrate(conn)
            except self._pg.Error as exc:
                raise self._failure("create the ledger's tables", exc) from None
            if found > SCHEMA_VERSION:
                self.close()
                raise LedgerError(
                    f"the ledger {self.location} has schema version {found}, written by a newer deploy-mcp; this one "
                    f"knows versions up to {SCHEMA_VERSION}. Upgrade deploy-mcp (pip install -U deploy-mcp) to use it"
                )

    # connections and transactions

    def _connect(self) -> psycopg.Connection:
        options: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": self._connect_timeout,
            "application_name": "deploy-mcp",
        }
        if self._url.password is not None:
            options["password"] = self._url.password
        try:
            conn = self._pg.connect(self._url.url, **options)
            conn.execute("SET TIME ZONE 'UTC'")
        except self._pg.Error as exc:
            raise LedgerError(
                f"cannot connect to the ledger {self.location} ({self._url.source}): "
                f"{self._url.scrub(str(exc)).strip()}; check the URL, that the server is up, and the password "
                "(PGPASSWORD or DEPLOY_MCP_LEDGER_PASSWORD_FILE)"
            ) from None
        return conn

    def _store(self) -> psycopg.Connection:
        """The store connection, made again when the last one broke (a restarted server, a network cut)."""
        if self._closed:
            raise LedgerError(f"the ledger {self.location} is closed; open it again with open_ledger()")
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                with suppress(Exception):
                    self._conn.close()
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _transaction(self, what: str) -> Iterator[psycopg.Connection]:
        with self._lock:
            conn = self._store()
            try:
                with conn.transaction():
                    yield conn
            except self._pg.Error as exc:
                raise self._failure(what, exc) from None

    def _read(self, what: str, query: Callable[[psycopg.Connection], _T]) -> _T:
        """Run a read of one statement, in autocommit (its own transaction: one round trip, not BEGIN, SELECT and
        COMMIT). When the connection turns out to be dead (the server restarted, a failover, a network cut), run it
        once more on a new one. Only reads are retried: a write whose connection died may have committed."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._store()
                try:
                    return query(conn)
                except self._pg.Error as exc:
                    if attempt == 2 or not (conn.closed or conn.broken):
                        raise self._failure(what, exc) from None
        raise AssertionError("unreachable")

    def _failure(self, what: str, exc: Exception) -> LedgerError:
        return LedgerError(f"{what}: the ledger {self.location} failed: {self._url.scrub(str(exc)).strip()}")

    @property
    def location(self) -> str:
        return self._url.shown

    @property
    def schema_version(self) -> int:
        from deploy_mcp.ledger.pg_schema import current_version

        with self._transaction("read the schema version") as conn:
            return current_version(conn)

    def close(self) -> None:
        self._stop_listening.set()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(LISTEN_TICK * 3)
        with self._lock:
            self._closed = True
            for conn in (self._conn, self._lock_conn):
                if conn is not None:
                    with suppress(Exception):
                        conn.close()
            self._conn = self._lock_conn = None
            self._advisory.clear()

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
        return f"PostgresLedger({self.location!r})"

    # records

    def create(self, *, service: str, version: str, environment: str, strategy: str, **fields: Any) -> DeploymentRecord:
        if "id" in fields:
            raise LedgerError("create: id is allocated by the ledger; leave it out")
        values = {"service": service, "version": version, "environment": environment, "strategy": strategy}
        draft = _validate({"id": _PLACEHOLDER_ID, **values, **fields}, "create")
        day = id_day(draft.deployed_at)
        with self._transaction("create a deployment record") as conn:
            # One allocator per day at a time, across replicas; the lock ends with the transaction.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(_ID_LOCK_NAMESPACE, day.isoformat()),))
            row = conn.execute(
                "SELECT COALESCE(MAX(id_number), 0) + 1 FROM deployments WHERE id_day = %s", (day,)
            ).fetchone()
            record = draft.model_copy(update={"id": format_id(day, row[0])})
            conn.execute(
                "INSERT INTO deployments (id, id_day, id_number, service, environment, version, status, "
                "deployed_at, record) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::json)",
                (record.id, day, row[0], *_columns(record)),
            )
        return record

    def get(self, deployment_id: str) -> DeploymentRecord | None:
        return self._read(f"read {deployment_id}", lambda conn: self._record(conn, deployment_id))

    def save(self, record: DeploymentRecord) -> None:
        if not isinstance(record, DeploymentRecord):
            raise LedgerError(f"save: expected a DeploymentRecord, got {type(record).__name__}")
        checked = _validate(record.model_dump(warnings=False), f"save {record.id}")
        with self._transaction(f"save {record.id}") as conn:
            self._write(conn, checked, "save")

    def update(self, deployment_id: str, **changes: Any) -> DeploymentRecord:
        if changes.get("id", deployment_id) != deployment_id:
            raise LedgerError(f"update {deployment_id}: id cannot change; create a new record instead")
        with self._transaction(f"update {deployment_id}") as conn:
            current = self._record(conn, deployment_id, for_update=True)
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
                clauses.append(f"{column} = %s")
                params.append(str(value))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT record::text FROM deployments {where} {_NEWEST_FIRST} LIMIT %s"
        rows = self._read("list deployments", lambda conn: conn.execute(sql, (*params, limit)).fetchall())
        return [_decode(row[0]) for row in rows]

    def last_good(self, service: str, environment: str, *, before: str | None = None) -> DeploymentRecord | None:
        sql = (
            "SELECT record::text FROM deployments WHERE service = %s AND environment = %s AND status = %s "
            "AND (record -> 'validation' ->> 'passed') = 'true'"
        )
        params: list[Any] = [service, environment, Status.SUCCEEDED.value]
        with self._transaction(f"find the last good deployment of {service}/{environment}") as conn:
            if before is not None:
                anchor = conn.execute(
                    "SELECT deployed_at, id_day, id_number FROM deployments WHERE id = %s", (before,)
                ).fetchone()
                if anchor is None:
                    raise self._unknown("last_good before", before)
                sql += " AND (deployed_at, id_day, id_number) < (%s, %s, %s)"
                params.extend(anchor)
            row = conn.execute(f"{sql} {_NEWEST_FIRST} LIMIT 1", params).fetchone()
        return _decode(row[0]) if row else None

    def unfinished(self) -> builtins.list[DeploymentRecord]:
        # Spelled as the partial index's predicate, so the planner uses it.
        marks = ", ".join(f"'{status.value}'" for status in UNFINISHED_STATUSES)
        sql = f"SELECT record::text FROM deployments WHERE status IN ({marks}) {_NEWEST_FIRST}"
        rows = self._read("list unfinished deployments", lambda conn: conn.execute(sql).fetchall())
        return [_decode(row[0]) for row in rows]

    def _record(
        self, conn: psycopg.Connection, deployment_id: str, *, for_update: bool = False
    ) -> DeploymentRecord | None:
        lock = " FOR UPDATE" if for_update else ""
        row = conn.execute(f"SELECT record::text FROM deployments WHERE id = %s{lock}", (deployment_id,)).fetchone()
        return _decode(row[0]) if row else None

    def _write(self, conn: psycopg.Connection, record: DeploymentRecord, verb: str) -> None:
        cursor = conn.execute(
            "UPDATE deployments SET service = %s, environment = %s, version = %s, status = %s, deployed_at = %s, "
            "record = %s::json WHERE id = %s",
            (*_columns(record), record.id),
        )
        if cursor.rowcount == 0:
            raise self._unknown(verb, record.id)

    def _unknown(self, verb: str, deployment_id: str) -> LedgerError:
        hint = "" if parse_id(deployment_id) else " (ids look like deploy-YYYY-MM-DD-NNN)"
        return LedgerError(
            f"{verb}: no deployment {deployment_id!r} in the ledger {self.location}{hint}; "
            "deployment_history lists the ids"
        )

    # event log

    def append_event(self, deployment_id: str, kind: str, message: str, data: dict[str, Any] | None = None) -> Event:
        with self._transaction(f"append an event to {deployment_id}") as conn:
            # The record's row lock numbers the events of one deployment one writer at a time.
            if conn.execute("SELECT 1 FROM deployments WHERE id = %s FOR UPDATE", (deployment_id,)).fetchone() is None:
                raise self._unknown("append_event", deployment_id)
            seq = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE deployment_id = %s", (deployment_id,)
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
                "INSERT INTO events (deployment_id, seq, at, kind, message, data) VALUES (%s, %s, %s, %s, %s, %s)",
                (deployment_id, seq, event.at, kind, message, json.dumps(stored["data"])),
            )
            # Delivered when (and only if) this transaction commits.
            conn.execute(
                "SELECT pg_notify(%s, %s)",
                (EVENTS_CHANNEL, json.dumps({"id": deployment_id, "seq": seq, "kind": kind})),
            )
        self._subscribers.wake(deployment_id, kind)  # our own waiters need not wait for the round trip
        return event

    def events(self, deployment_id: str) -> builtins.list[Event]:
        rows = self._read(
            f"read the events of {deployment_id}",
            lambda conn: conn.execute(
                "SELECT seq, at, kind, message, data::text FROM events WHERE deployment_id = %s ORDER BY seq",
                (deployment_id,),
            ).fetchall(),
        )
        return [
            Event(deployment_id=deployment_id, seq=seq, at=at, kind=kind, message=message, data=json.loads(data))
            for seq, at, kind, message, data in rows
        ]

    @property
    def pushes_events(self) -> bool:
        return True

    def subscribe(
        self, deployment_id: str, wake: threading.Event, kinds: frozenset[str] | None = None
    ) -> Callable[[], None]:
        unsubscribe = self._subscribers.add(deployment_id, wake, kinds)
        self._ensure_listener()
        return unsubscribe

    def _ensure_listener(self) -> None:
        with self._lock:
            if self._closed or (self._listener is not None and self._listener.is_alive()):
                return
            ready = threading.Event()
            self._listener = threading.Thread(
                target=self._listen, args=(ready,), name="deploy-mcp ledger listener", daemon=True
            )
            self._listener.start()
        # A subscriber must not miss what is appended right after it subscribed: wait until LISTEN is in place
        # (or the first attempt failed, which wakes every waiter when it finally connects).
        ready.wait(self._connect_timeout)

    def _listen(self, ready: threading.Event) -> None:
        """The listener thread: one connection that only LISTENs; reconnects and wakes everyone after a loss."""
        first = True
        while not self._stop_listening.is_set():
            try:
                conn = self._connect()
            except LedgerError as exc:
                ready.set()
                log.warning("ledger listener: %s; trying again", exc)
                self._stop_listening.wait(RECONNECT_DELAY)
                continue
            try:
                with conn:
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    ready.set()
                    if not first:
                        self._subscribers.wake_all()  # what was sent while we were away is lost: read again
                    first = False
                    while not self._stop_listening.is_set():
                        for note in conn.notifies(timeout=LISTEN_TICK):
                            self._deliver(note.payload)
            except self._pg.Error as exc:
                if not self._stop_listening.is_set():
                    log.warning("ledger listener lost its connection (%s); reconnecting", self._url.scrub(str(exc)))
                    self._stop_listening.wait(RECONNECT_DELAY)

    def _deliver(self, payload: str) -> None:
        try:
            note = json.loads(payload)
            self._subscribers.wake(str(note["id"]), str(note["kind"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ledger listener: ignored a notification it cannot read: %r", payload[:200])

    # locks

    def _lock_session(self) -> psycopg.Connection:
        """The session holding this process's advisory locks; when it was lost, so were they: take them again,
        forgetting any another process took meanwhile (`renew_lock` then reports the loss)."""
        conn = self._lock_conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            with suppress(Exception):
                conn.close()
        self._lock_conn = conn = self._connect()
        for key in list(self._advisory):
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                del self._advisory[key]
        return conn

    def _take_advisory(self, key: int, holder: str) -> bool:
        if key in self._advisory:
            self._advisory[key] = holder  # held by this session already (advisory locks stack: take it once)
            return True
        try:
            got = self._lock_session().execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        except self._pg.Error as exc:
            raise self._failure("take the deployment lock", exc) from None
        if got:
            self._advisory[key] = holder
        return bool(got)

    def _drop_advisory(self, key: int, holder: str) -> None:
        if self._advisory.get(key) != holder:
            return
        del self._advisory[key]
        conn = self._lock_conn
        if conn is not None and not conn.closed and not conn.broken:
            with suppress(self._pg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

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
        key = advisory_key(_LOCK_NAMESPACE, service, environment)
        lease = timedelta(seconds=lease_seconds)
        with self._transaction(f"lock {service}/{environment}") as conn:
            conn.execute(
                "INSERT INTO locks (service, environment, holder, deployment_id, acquired_at, expires_at) "
                "VALUES (%s, %s, '', NULL, now(), now() - interval '1 second') ON CONFLICT DO NOTHING",
                (service, environment),
            )
            row = conn.execute(
                "SELECT holder, deployment_id, acquired_at, expires_at, now() FROM locks "
                "WHERE service = %s AND environment = %s FOR UPDATE",
                (service, environment),
            ).fetchone()
            holder_now, held_for, acquired_at, expires_at, now = row
            live = expires_at > now
            if live and holder_now != holder:
                return _lock_state(False, service, environment, row[:4])
            if not self._take_advisory(key, holder):
                # The row's lease lapsed, but the replica that holds it is alive (its session keeps the advisory
                # lock): a stalled heartbeat, not a dead process. Never two drivers at once.
                refused = row[:4] if holder_now else (f"another deploy-mcp replica ({self.location})", None, now, now)
                return _lock_state(False, service, environment, refused)
            renewing = live and holder_now == holder
            claim = (
                holder,
                deployment_id if deployment_id is not None or not renewing else held_for,
                acquired_at if renewing else now,
                now + lease,
            )
            try:
                conn.execute(
                    "UPDATE locks SET holder = %s, deployment_id = %s, acquired_at = %s, expires_at = %s "
                    "WHERE service = %s AND environment = %s",
                    (*claim, service, environment),
                )
            except BaseException:
                if not renewing:
                    self._drop_advisory(key, holder)
                raise
            return _lock_state(True, service, environment, claim)

    def renew_lock(self, service: str, environment: str, holder: str, lease_seconds: float = 30) -> bool:
        """Extend the lease while the row names ``holder`` and this process still holds the advisory lock (a lost
        lock session that could not take it back means another replica may drive now: report the loss)."""
        _require_lock_args(holder, lease_seconds)
        key = advisory_key(_LOCK_NAMESPACE, service, environment)
        with self._transaction(f"renew the lock of {service}/{environment}") as conn:
            try:
                self._lock_session()
            except LedgerError:
                return True  # cannot tell now; the lease still runs and the next beat asks again
            if self._advisory.get(key) != holder:
                return False
            cursor = conn.execute(
                "UPDATE locks SET expires_at = now() + %s WHERE service = %s AND environment = %s AND holder = %s",
                (timedelta(seconds=lease_seconds), service, environment, holder),
            )
            return cursor.rowcount == 1

    def release_lock(self, service: str, environment: str, holder: str) -> bool:
        key = advisory_key(_LOCK_NAMESPACE, service, environment)
        with self._transaction(f"release the lock of {service}/{environment}") as conn:
            cursor = conn.execute(
                "DELETE FROM locks WHERE service = %s AND environment = %s AND holder = %s",
                (service, environment, holder),
            )
            released = cursor.rowcount == 1
        with self._lock:
            self._drop_advisory(key, holder)
        return released

    def lock_state(self, service: str, environment: str) -> LockState | None:
        """The live holder, or None when the lock is free or its lease has run out."""
        row = self._read(
            f"read the lock of {service}/{environment}",
            lambda conn: conn.execute(
                "SELECT holder, deployment_id, acquired_at, expires_at FROM locks "
                "WHERE service = %s AND environment = %s AND expires_at > now() AND holder <> ''",
                (service, environment),
            ).fetchone(),
        )
        return _lock_state(True, service, environment, row) if row else None

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
        expiry = _aware(expires_at) if expires_at is not None else None
        with self._transaction(f"record the approval of {change_id}") as conn:
            row = conn.execute(
                "INSERT INTO approvals (change_id, service, environment, approved_by, approved_at, expires_at, "
                "version) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (change_id, service, environment, approved_by, approved_at, expiry, version),
            ).fetchone()
        return Approval(id=row[0], **fields, approved_at=approved_at, expires_at=expiry, version=version)

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
        clauses = ["change_id = %s", "service = %s", "environment = %s", "(expires_at IS NULL OR expires_at > %s)"]
        params: list[Any] = [change_id, service, environment, now]
        if version is not None:
            clauses.append("(version IS NULL OR version = %s)")
            params.append(version)
        if not include_used:
            clauses.append(_UNCLAIMED)
            params.extend(_unclaimed_params(now))
        sql = f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT 1"
        row = self._read(f"find the approval of {change_id}", lambda conn: conn.execute(sql, params).fetchone())
        return _approval(row, _stale_before(now)) if row else None

    def use_approval(self, approval_id: int, used_by: str, *, replacing: str | None = None) -> Approval | None:
        if not isinstance(used_by, str) or not used_by.strip():
            raise LedgerError(f"use_approval: used_by: must name the deployment (got {used_by!r})")
        now = utcnow()
        with self._transaction(f"spend approval {approval_id} on {used_by}") as conn:
            if replacing is None:
                # One UPDATE: under READ COMMITTED a second spender re-checks the row after the first commits.
                row = conn.execute(
                    f"UPDATE approvals SET used_by = %s, used_at = %s WHERE id = %s AND {_UNCLAIMED} "
                    f"AND (expires_at IS NULL OR expires_at > %s) RETURNING {_APPROVAL_COLUMNS}",
                    (used_by, now, approval_id, *_unclaimed_params(now), now),
                ).fetchone()
            else:
                row = conn.execute(
                    f"UPDATE approvals SET used_by = %s WHERE id = %s AND used_by = %s RETURNING {_APPROVAL_COLUMNS}",
                    (used_by, approval_id, replacing),
                ).fetchone()
        return _approval(row, _stale_before(now)) if row else None

    def release_approval(self, approval_id: int, used_by: str) -> bool:
        with self._transaction(f"give back approval {approval_id}") as conn:
            cursor = conn.execute(
                "UPDATE approvals SET used_by = NULL, used_at = NULL WHERE id = %s AND used_by = %s",
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
                clauses.append(f"{column} = %s")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        stale_before = _stale_before(utcnow())
        sql = f"SELECT {_APPROVAL_COLUMNS} FROM approvals {where} ORDER BY id DESC LIMIT %s"
        rows = self._read("list approvals", lambda conn: conn.execute(sql, (*params, limit)).fetchall())
        return [_approval(row, stale_before) for row in rows]


def _aware(moment: datetime) -> datetime:
    """A naive time is taken as UTC, as everywhere in the ledger."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=PROVISIONAL_CLAIM_LEASE)


def _unclaimed_params(now: datetime) -> tuple[str, datetime]:
    return PROVISIONAL_CLAIM_PREFIX, _stale_before(now)


def _columns(record: DeploymentRecord) -> tuple[str, str, str, str, datetime, str]:
    return (
        record.service,
        record.environment,
        record.version,
        record.status.value,
        _aware(record.deployed_at),
        record.model_dump_json(),
    )


def _lock_state(acquired: bool, service: str, environment: str, row: tuple[Any, ...]) -> LockState:
    holder, deployment_id, acquired_at, expires_at = row
    return LockState(
        acquired=acquired,
        service=service,
        environment=environment,
        holder=holder,
        deployment_id=deployment_id,
        acquired_at=acquired_at,
        expires_at=expires_at,
    )


def _approval(row: tuple[Any, ...], stale_before: datetime) -> Approval:
    approval_id, change_id, service, environment, approved_by, approved_at, expires_at, version, used_by, used_at = row
    lapsed = used_at is None or used_at < stale_before
    if used_by is not None and used_by.startswith(PROVISIONAL_CLAIM_PREFIX) and lapsed:
        used_by = used_at = None
    return Approval(
        id=approval_id,
        change_id=change_id,
        service=service,
        environment=environment,
        approved_by=approved_by,
        approved_at=approved_at,
        expires_at=expires_at,
        version=version,
        used_by=used_by,
        used_at=used_at,
    )
