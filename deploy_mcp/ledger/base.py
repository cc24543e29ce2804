"""The ledger's contract: what every storage backend offers, and the small models it hands back.

Callers (the runner, the tools, the CLI) depend on ``Ledger`` only, so a PostgreSQL backend for teams can be added
beside the SQLite one without touching them. The deployment record and the event are the domain models of
``deploy_mcp.core.records``; the ledger adds only what exists because of storage: locks and approvals.
"""

from __future__ import annotations

import builtins  # `list` in these classes is the method: annotations after it name the type explicitly
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from deploy_mcp.core.records import DeploymentRecord, Event, Status
from deploy_mcp.errors import UserError

UNFINISHED_STATUSES: tuple[Status, ...] = tuple(status for status in Status if not status.finished)

PROVISIONAL_CLAIM_PREFIX = "starting:"
"""How a claim on an approval taken before the deployment has an id starts (``starting:<uuid>``)."""

PROVISIONAL_CLAIM_LEASE = 120.0
"""Seconds a provisional claim holds an approval. Starting a deployment (lint, platform reads, the record) takes
seconds; a claim this old belongs to a process that died before handing it to its deployment, and must not keep
the approval spent by a deployment that does not exist. Long enough that a slow start under load keeps its claim;
and a start that still overran it only races a second deploy that the deployment lock refuses."""


class LedgerError(UserError):
    """The ledger refused or could not do something (busy, unreadable, newer); the message names the field or file
    and the fix, so every face shows it as it is, to a person and to an agent."""


class LockState(BaseModel):
    """Who holds the deployment lock of one service and environment, and until when.

    From ``acquire_lock``: ``acquired`` says whether the caller got it; when it did not, the other fields describe
    the current holder so the caller can say which deployment is running. From ``lock_state``: ``acquired`` is
    True, meaning the lock is held by ``holder``.
    """

    model_config = ConfigDict(frozen=True)

    acquired: bool
    service: str
    environment: str
    holder: str
    deployment_id: str | None = None
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        """A sentence for a refusal: which deployment runs where, and when its lease runs out."""
        what = self.deployment_id or f"a deployment by {self.holder}"
        until = self.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return (
            f"{what} is running for {self.service}/{self.environment} "
            f"(lock held by {self.holder} until {until} unless renewed)"
        )


class Approval(BaseModel):
    """A human's out-of-band approval of an enterprise change for one service and environment.

    A person approves one change, not a standing licence: the first deployment that starts under it spends it
    (``used_by`` names that deployment), so a change id an agent repeats cannot carry later versions through.
    ``version``, when set, is the only version it covers. An approval keyed by a deployment id (for rollback,
    promote or resume of that deployment) is never spent: it only ever acts on that one deployment.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    change_id: str
    service: str
    environment: str
    approved_by: str
    approved_at: datetime
    expires_at: datetime | None = None
    version: str | None = None
    used_by: str | None = None
    used_at: datetime | None = None

    def valid_at(self, moment: datetime) -> bool:
        return self.expires_at is None or moment < self.expires_at

    @property
    def used(self) -> bool:
        return self.used_by is not None

    @property
    def provisional(self) -> bool:
        """Claimed by a deployment that is still starting (``used_by`` is no deployment id yet)."""
        return self.used_by is not None and self.used_by.startswith(PROVISIONAL_CLAIM_PREFIX)

    def covers(self, version: str | None) -> bool:
        """Whether it approves shipping ``version`` (any version when it names none; None asks about none)."""
        return self.version is None or version is None or self.version == version


class Storage(Protocol):
    """What every part shares: where the ledger lives, its schema version, and its lifetime."""

    @property
    def location(self) -> str:
        """Where the ledger lives, for messages: a file path, or a database URL with its password masked."""
        ...

    @property
    def schema_version(self) -> int:
        """How many of the backend's schema steps the store has had (its own migrations, applied on open)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class RecordStore(Protocol):
    """Deployment records. Ids are ``deploy-YYYY-MM-DD-NNN`` (UTC date of ``deployed_at``, counting from 001 each
    day), allocated by the store so two processes never hand out the same one. Lists are newest first."""

    def create(self, *, service: str, version: str, environment: str, strategy: str, **fields: Any) -> DeploymentRecord:
        """Allocate an id, store a new record built from these fields, return it."""
        ...

    def get(self, deployment_id: str) -> DeploymentRecord | None: ...

    def save(self, record: DeploymentRecord) -> None:
        """Replace an existing record entirely; LedgerError when its id is unknown."""
        ...

    def update(self, deployment_id: str, **changes: Any) -> DeploymentRecord:
        """Replace the named fields (each one whole) atomically, with no lost update between processes."""
        ...

    def list(
        self,
        *,
        service: str | None = None,
        environment: str | None = None,
        status: Status | None = None,
        limit: int = 20,
    ) -> list[DeploymentRecord]: ...

    def last_good(self, service: str, environment: str, *, before: str | None = None) -> DeploymentRecord | None:
        """The newest succeeded record whose validation passed, optionally older than deployment ``before``."""
        ...

    def unfinished(self) -> builtins.list[DeploymentRecord]:
        """Records still pending, in progress, paused or interrupted, newest first; the runner decides."""
        ...


@runtime_checkable
class EventLog(Protocol):
    """Each record's append-only, numbered event log; the control channel (pause, promote, abort) travels in it.

    ``subscribe`` lets a waiter sleep until something is appended instead of re-reading the log: the SQLite
    backend wakes waiters of its own process only (others read on their next poll), the PostgreSQL one wakes
    every replica through LISTEN/NOTIFY. ``pushes_events`` says which, so a waiter knows whether it must poll.
    """

    def append_event(
        self, deployment_id: str, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> Event: ...

    def events(self, deployment_id: str) -> builtins.list[Event]: ...

    @property
    def pushes_events(self) -> bool:
        """True when ``subscribe`` hears appends made by every process, so nobody needs to poll."""
        ...

    def subscribe(
        self, deployment_id: str, wake: threading.Event, kinds: frozenset[str] | None = None
    ) -> Callable[[], None]:
        """Set ``wake`` whenever an event (of one of ``kinds``, or any) is appended to ``deployment_id``, or the
        feed had to reconnect and may have missed one; returns the function that unsubscribes."""
        ...


@runtime_checkable
class LockStore(Protocol):
    """One deployment per service and environment, across processes: a lock with a lease its holder renews."""

    def acquire_lock(
        self,
        service: str,
        environment: str,
        holder: str,
        *,
        deployment_id: str | None = None,
        lease_seconds: float = 30,
    ) -> LockState: ...

    def renew_lock(self, service: str, environment: str, holder: str, lease_seconds: float = 30) -> bool: ...

    def release_lock(self, service: str, environment: str, holder: str) -> bool: ...

    def lock_state(self, service: str, environment: str) -> LockState | None: ...


@runtime_checkable
class ApprovalStore(Protocol):
    """Enterprise change approvals given out of band by a person, each spent by one deployment."""

    def add_approval(
        self,
        change_id: str,
        service: str,
        environment: str,
        approved_by: str,
        expires_at: datetime | None = None,
        version: str | None = None,
    ) -> Approval: ...

    def find_approval(
        self,
        change_id: str,
        service: str,
        environment: str,
        *,
        version: str | None = None,
        include_used: bool = False,
    ) -> Approval | None:
        """The newest approval of this change for this service and environment that has not expired and not
        been spent by a deployment (unless ``include_used``); with ``version``, only one that covers it.

        A provisional claim older than `PROVISIONAL_CLAIM_LEASE` counts as no claim, here and in every method:
        it is returned (and listed) with ``used_by`` and ``used_at`` None."""
        ...

    def use_approval(self, approval_id: int, used_by: str, *, replacing: str | None = None) -> Approval | None:
        """Spend an approval on ``used_by`` (a deployment id) in one transaction; None when it is spent already,
        expired or unknown, so two deployments can never both start under it.

        With ``replacing``, move it from that holder (a provisional claim taken before the deployment had an id)
        to ``used_by`` instead; None when ``replacing`` no longer holds it. Without it, a provisional claim older
        than `PROVISIONAL_CLAIM_LEASE` is taken over, in the same transaction.
        """
        ...

    def release_approval(self, approval_id: int, used_by: str) -> bool:
        """Give back an approval that ``used_by`` claimed but never started under; False when it did not hold it."""
        ...

    def list_approvals(
        self,
        *,
        change_id: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        limit: int = 50,
    ) -> builtins.list[Approval]: ...


@runtime_checkable
class Ledger(Storage, RecordStore, EventLog, LockStore, ApprovalStore, Protocol):
    """The record store the runner, the tools and the CLI hold: every part together. Every write is one
    transaction: a call either happens entirely or not at all. Backends: ``SqliteLedger`` (one file, the default)
    and ``PostgresLedger`` (a team's shared database, several server replicas)."""


def describe_validation(exc: ValidationError) -> str:
    """pydantic's errors as ``field: problem (got value)`` clauses, so a caller's mistake reads as one sentence."""
    return "; ".join(_clause(error) for error in exc.errors())


def _clause(error: Any) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "(record)"
    if error["type"] == "extra_forbidden":
        return f"{path}: not a field of a deployment record"
    if error["type"] == "missing":
        return f"{path}: required field is missing"
    shown = error.get("input")
    got = f" (got {shown!r})" if not isinstance(shown, dict | list) and shown is not None else ""
    return f"{path}: {error['msg'].removeprefix('Value error, ')}{got}"


def as_status(value: Status | str | None) -> Status | None:
    """A status filter from an enum or its string, with the allowed values in the message when it is neither."""
    if value is None or isinstance(value, Status):
        return value
    try:
        return Status(value)
    except ValueError:
        allowed = ", ".join(status.value for status in Status)
        raise LedgerError(f"status: {value!r} is not one of {allowed}") from None


def validate_record(data: dict[str, Any], what: str) -> DeploymentRecord:
    """A record from caller data; a mismatch is a LedgerError naming ``what``, shared so both backends word it alike."""
    try:
        return DeploymentRecord.model_validate(data)
    except ValidationError as exc:
        raise LedgerError(f"{what}: {describe_validation(exc)}") from None


def decode_record(text: str) -> DeploymentRecord:
    """A stored record; one this model cannot read was most likely written by a newer deploy-mcp."""
    try:
        return DeploymentRecord.model_validate_json(text)
    except ValidationError as exc:
        raise LedgerError(
            f"a stored record does not match this deploy-mcp's record model ({describe_validation(exc)}); "
            "it was probably written by a newer deploy-mcp: upgrade deploy-mcp"
        ) from None


def require_lock_args(holder: str, lease_seconds: float) -> None:
    """The lock arguments every backend refuses the same way before touching storage."""
    if not isinstance(holder, str) or not holder.strip():
        raise LedgerError(f"holder: must be non-empty text naming the process, e.g. 'pid:host:uuid' (got {holder!r})")
    if not lease_seconds > 0:
        raise LedgerError(f"lease_seconds: must be more than 0 (got {lease_seconds!r})")
