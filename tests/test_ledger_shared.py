"""One ledger contract, two backends: every test here runs against the SQLite file and a real PostgreSQL.

The PostgreSQL runs use tests/postgres_fixture.py's throwaway cluster (a fresh database per test). Where the
promise is about processes (ids, locks, approvals, control requests), a second process holds its own ledger.
Backend-specific checks follow at the end: the URL and its password (PostgreSQL), and the advisory lock that
keeps a live replica's deployment its own even after its lease lapsed.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from postgres_fixture import Database, make_database, postgres  # noqa: F401
from test_ledger import DAY, Worker, web

from deploy_mcp.core.records import Status
from deploy_mcp.core.runner import control
from deploy_mcp.core.runner.control import ControlAction, Inbox
from deploy_mcp.ledger import Ledger, LedgerError, open_ledger, parse_id

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a ledger lives: a SQLite file path, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "project" / ".deploy" / "ledger.db")
    database: Database = request.getfixturevalue("make_database")()
    return f"postgresql://postgres@127.0.0.1:{database.server.port}/{database.name}"


def opened(where: str) -> Ledger:
    return open_ledger(where if where.startswith("postgresql://") else Path(where))


@pytest.fixture
def ledger(where: str) -> Iterator[Ledger]:
    with opened(where) as ledger:
        yield ledger


@pytest.fixture
def start_workers(where: str) -> Iterator[Callable[[int], list[Worker]]]:
    started: list[Worker] = []

    def start(count: int) -> list[Worker]:
        workers = [Worker(where) for _ in range(count)]  # type: ignore[arg-type]
        started.extend(workers)
        for worker in workers:
            assert worker.receive(timeout=30) == "ready"
        return workers

    yield start
    for worker in started:
        worker.stop()


# records and events


def test_records_and_events_survive_reopening(where: str) -> None:
    with opened(where) as ledger:
        created = web(ledger, deployed_by="alice", previous_version="0.9.0", rollback_of="deploy-2026-11-25-004")
        ledger.update(created.id, status=Status.IN_PROGRESS, current_step=0)
        for kind in ("started", "step", "verdict"):
            ledger.append_event(created.id, kind, f"{kind} happened", {"weight": 5, "at": DAY})
    with opened(where) as again:
        record = again.get(created.id)
        assert record == created.model_copy(update={"status": Status.IN_PROGRESS, "current_step": 0})
        events = again.events(created.id)
        assert [(event.seq, event.kind) for event in events] == [(1, "started"), (2, "step"), (3, "verdict")]
        assert events[0].data == {"weight": 5, "at": DAY.isoformat().replace("+00:00", "Z")}
        assert again.get("deploy-2001-01-01-001") is None and again.events("deploy-2001-01-01-001") == []
        assert again.schema_version >= 1


def test_bad_writes_are_refused_and_change_nothing(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="no deployment 'deploy-2001-01-01-001'"):
        ledger.append_event("deploy-2001-01-01-001", "step", "orphan")
    record = web(ledger, status="in_progress")
    with pytest.raises(LedgerError, match="data must hold only JSON values"):
        ledger.append_event(record.id, "step", "bad", {"x": object()})
    with pytest.raises(LedgerError, match="status"):
        ledger.update(record.id, status="exploded")
    with pytest.raises(LedgerError, match="id cannot change"):
        ledger.update(record.id, id="deploy-2001-01-01-001")
    with pytest.raises(LedgerError, match="id is allocated by the ledger"):
        web(ledger, id="deploy-2026-11-26-777")
    assert ledger.get(record.id) == record and ledger.events(record.id) == []


def test_history_filters_orders_and_limits(ledger: Ledger) -> None:
    hour = timedelta(hours=1)
    made = [
        web(ledger, deployed_at=DAY, status="succeeded"),
        web(ledger, deployed_at=DAY + hour, environment="staging", status="failed"),
        web(ledger, deployed_at=DAY + 2 * hour, service="api", status="succeeded"),
        web(ledger, deployed_at=DAY + 3 * hour, status="in_progress"),
    ]
    assert [r.id for r in ledger.list()] == [r.id for r in reversed(made)]
    assert [r.id for r in ledger.list(service="web", environment="production")] == [made[3].id, made[0].id]
    assert [r.id for r in ledger.list(status="succeeded", limit=1)] == [made[2].id]
    assert [r.id for r in ledger.list(environment="staging")] == [made[1].id]
    assert [r.id for r in ledger.unfinished()] == [made[3].id]
    with pytest.raises(LedgerError, match="status: 'done' is not one of"):
        ledger.list(status="done")
    with pytest.raises(LedgerError, match="limit: must be at least 1"):
        ledger.list(limit=0)


def test_last_good_needs_success_and_passed_validation(ledger: Ledger) -> None:
    passed = {"passed": True, "verdict": "pass"}
    good = web(ledger, deployed_at=DAY, status="succeeded", validation=passed)
    web(ledger, deployed_at=DAY + timedelta(hours=1), status="succeeded")  # never validated
    web(ledger, deployed_at=DAY + timedelta(hours=2), status="failed", validation=passed)
    newer = web(ledger, deployed_at=DAY + timedelta(hours=3), status="succeeded", validation=passed)
    assert ledger.last_good("web", "production") == newer
    assert ledger.last_good("web", "production", before=newer.id) == good
    assert ledger.last_good("web", "production", before=good.id) is None
    assert ledger.last_good("web", "staging") is None


def test_ids_count_per_utc_day_and_are_unique_across_processes(ledger: Ledger, start_workers: Callable) -> None:
    assert web(ledger, deployed_at=DAY).id == "deploy-2026-11-26-001"
    assert web(ledger, deployed_at=DAY + timedelta(days=1)).id == "deploy-2026-11-27-001"
    workers = start_workers(2)
    fields = {"service": "web", "version": "2.0.0", "environment": "staging", "strategy": "rolling"}
    for worker in workers:
        worker.send(op="create_many", count=30, fields=fields, pause_seconds=0.002)
    ids = [deployment_id for worker in workers for deployment_id in worker.receive(timeout=60)]
    assert len(set(ids)) == 60
    numbered = [parsed for i in ids if (parsed := parse_id(i)) is not None]
    if len({day for day, _ in numbered}) == 1:
        assert sorted(number for _, number in numbered) == list(range(1, 61))


def test_threads_sharing_one_ledger_number_events_without_gaps(ledger: Ledger) -> None:
    record = web(ledger, status="in_progress")
    errors: list[BaseException] = []

    def append_some() -> None:
        try:
            for _ in range(15):
                ledger.append_event(record.id, "step", "from a thread")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert [event.seq for event in ledger.events(record.id)] == list(range(1, 61))


# locks


def test_one_of_two_racing_processes_gets_the_lock_and_the_other_is_told_who(
    ledger: Ledger, start_workers: Callable
) -> None:
    workers = start_workers(2)
    holders = ["pid:1:a", "pid:2:b"]
    for round_number in range(10):
        for worker, holder in zip(workers, holders, strict=True):
            worker.send(
                op="call",
                method="acquire_lock",
                args=["web", "production", holder],
                kwargs={"deployment_id": f"deploy-2026-11-26-{round_number + 1:03d}", "lease_seconds": 30},
            )
        states = [worker.receive() for worker in workers]
        winners = [state for state in states if state["acquired"]]
        assert len(winners) == 1, f"round {round_number}: {states}"
        assert all(state["holder"] == winners[0]["holder"] for state in states)
        held = ledger.lock_state("web", "production")
        assert held is not None and held.holder == winners[0]["holder"]
        winner = workers[holders.index(winners[0]["holder"])]
        assert winner.call("release_lock", "web", "production", winners[0]["holder"])


def test_lock_is_renewed_and_released_only_by_its_holder(ledger: Ledger) -> None:
    first = ledger.acquire_lock("web", "production", "pid:1:a", deployment_id="deploy-2026-11-26-001")
    assert first.acquired
    refused = ledger.acquire_lock("web", "production", "pid:2:b", deployment_id="deploy-2026-11-26-002")
    assert not refused.acquired and refused.holder == "pid:1:a"
    assert refused.describe().startswith("deploy-2026-11-26-001 is running for web/production")
    assert ledger.acquire_lock("web", "staging", "pid:2:b").acquired
    assert not ledger.renew_lock("web", "production", "pid:2:b")
    assert not ledger.release_lock("web", "production", "pid:2:b")
    assert ledger.renew_lock("web", "production", "pid:1:a", lease_seconds=120)
    state = ledger.lock_state("web", "production")
    assert state is not None and state.expires_at > first.expires_at + timedelta(seconds=60)
    again = ledger.acquire_lock("web", "production", "pid:1:a")
    assert again.acquired and again.deployment_id == "deploy-2026-11-26-001"
    assert ledger.release_lock("web", "production", "pid:1:a")
    assert ledger.lock_state("web", "production") is None
    with pytest.raises(LedgerError, match="lease_seconds: must be more than 0"):
        ledger.acquire_lock("web", "production", "pid:1:a", lease_seconds=0)


def test_a_killed_holders_lock_is_taken_over_only_after_its_lease(ledger: Ledger, start_workers: Callable) -> None:
    (holder,) = start_workers(1)
    lease = 1.5
    taken = holder.call(
        "acquire_lock", "web", "production", "pid:1:dead", deployment_id="deploy-2026-11-26-003", lease_seconds=lease
    )
    assert taken["acquired"]
    assert holder.kill() == -signal.SIGKILL
    refused = ledger.acquire_lock("web", "production", "pid:2:next")
    assert not refused.acquired and refused.deployment_id == "deploy-2026-11-26-003"
    expires = refused.expires_at
    deadline = time.monotonic() + 30
    while not (state := ledger.acquire_lock("web", "production", "pid:2:next", deployment_id="x")).acquired:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    assert datetime.now(UTC) >= expires - timedelta(milliseconds=50), "taken over before the lease ran out"
    assert state.holder == "pid:2:next"


# approvals


def test_an_approval_is_spent_once_across_processes(ledger: Ledger, start_workers: Callable) -> None:
    any_version = ledger.add_approval("CHG-1", "web", "production", "alice")
    only_two = ledger.add_approval("CHG-2", "web", "production", "bob", version="2.0.0")
    expired = ledger.add_approval("CHG-3", "web", "production", "carol", expires_at=datetime.now(UTC) - timedelta(1))
    assert ledger.find_approval("CHG-2", "web", "production", version="3.0.0") is None
    assert ledger.find_approval("CHG-1", "web", "production", version="3.0.0") == any_version
    assert ledger.find_approval("CHG-3", "web", "production") is None
    assert ledger.list_approvals() == [expired, only_two, any_version]

    workers = start_workers(2)
    for number, worker in enumerate(workers, start=1):
        worker.send(op="call", method="use_approval", args=[any_version.id, f"deploy-2026-11-26-00{number}"], kwargs={})
    winners = [result for result in (worker.receive() for worker in workers) if result is not None]
    assert len(winners) == 1
    assert ledger.find_approval("CHG-1", "web", "production") is None
    assert ledger.find_approval("CHG-1", "web", "production", include_used=True).used_by == winners[0]["used_by"]

    assert ledger.use_approval(only_two.id, "starting:a") is not None
    assert ledger.use_approval(only_two.id, "deploy-2026-11-26-009", replacing="starting:x") is None
    moved = ledger.use_approval(only_two.id, "deploy-2026-11-26-009", replacing="starting:a")
    assert moved is not None and moved.used_by == "deploy-2026-11-26-009"
    assert ledger.use_approval(expired.id, "deploy-2026-11-26-010") is None


# the control channel


def test_a_control_request_from_another_process_reaches_the_driver(ledger: Ledger, start_workers: Callable) -> None:
    """The driver waits on its inbox; a request another process writes wakes it, and the requester sees the ack.
    PostgreSQL delivers it by NOTIFY (the inbox never polls); SQLite at the inbox's next poll."""
    record = web(ledger, status="in_progress")
    inbox = Inbox(ledger, record.id)
    (other,) = start_workers(1)
    try:
        other.send(
            op="call",
            method="append_event",
            args=[record.id, control.CONTROL_EVENT, "pause requested by bob"],
            kwargs={"data": {"action": "pause", "by": "bob", "reason": None}},
        )
        request = inbox.wait(20)
        assert other.receive()["seq"] == 1
        assert request is not None and request.action is ControlAction.PAUSE and request.by == "bob"
        inbox.ack(request, "paused")
        assert control.wait_for_ack(ledger, record.id, request.seq, timeout=10) == "paused"
    finally:
        inbox.close()


def test_subscribers_hear_only_the_kinds_they_asked_for(where: str) -> None:
    """PostgreSQL wakes a subscriber on another connection (another replica); SQLite wakes its own process's."""
    with opened(where) as writer, opened(where) as reader:
        record = web(writer, status="in_progress")
        listener = reader if reader.pushes_events else writer
        heard = threading.Event()
        unsubscribe = listener.subscribe(record.id, heard, frozenset({control.ACK_EVENT}))
        writer.append_event(record.id, "step_started", "not for the subscriber")
        writer.append_event(record.id, control.ACK_EVENT, "for the subscriber")
        assert heard.wait(10), "the subscriber was not woken"
        heard.clear()
        writer.append_event(record.id, "measurement", "still not for the subscriber")
        time.sleep(0.5)
        assert not heard.is_set()
        unsubscribe()
        writer.append_event(record.id, control.ACK_EVENT, "after unsubscribing")
        time.sleep(0.5)
        assert not heard.is_set()


# PostgreSQL only: what the advisory lock, the listener and the schema table add


@pytest.fixture
def pg_url(make_database: Callable[[], Database]) -> str:  # noqa: F811
    database = make_database()
    return f"postgresql://postgres@127.0.0.1:{database.server.port}/{database.name}"


def backend_pids(url: str, ledger: Ledger) -> dict[str, int]:
    """The server pids of a PostgresLedger's connections (store, lock session, listener), by what they do."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    found: dict[str, int] = {}
    for pid, query in rows:
        if query.startswith("LISTEN"):
            found["listener"] = pid
        elif "pg_try_advisory_lock" in query or "pg_advisory_unlock" in query:  # the lock session's only queries
            found["locks"] = pid
        else:
            found["store"] = pid
    return found


def terminate(url: str, pid: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_live_replica_keeps_its_deployment_after_its_lease_lapsed(pg_url: str) -> None:
    """A stalled heartbeat is not a death: while the holder's session lives, nobody else drives its deployment."""
    with opened(pg_url) as first, opened(pg_url) as second:
        assert first.acquire_lock("web", "production", "replica-a", deployment_id="d-1", lease_seconds=0.2).acquired
        time.sleep(0.4)
        assert first.lock_state("web", "production") is None  # the lease ran out...
        refused = second.acquire_lock("web", "production", "replica-b", deployment_id="d-2")
        assert not refused.acquired and refused.holder == "replica-a"  # ...but replica a is alive
        assert first.renew_lock("web", "production", "replica-a", lease_seconds=0.3)  # and carries on
        first.close()  # replica a dies: its session, and its advisory lock, end; its lease runs out
        time.sleep(0.5)
        taken = second.acquire_lock("web", "production", "replica-b", deployment_id="d-2")
        assert taken.acquired and taken.deployment_id == "d-2"


def test_a_replica_that_lost_its_lock_session_to_another_learns_it_at_its_next_renewal(pg_url: str) -> None:
    with opened(pg_url) as first, opened(pg_url) as second:
        assert first.acquire_lock("web", "production", "replica-a", lease_seconds=0.3).acquired
        terminate(pg_url, backend_pids(pg_url, first)["locks"])  # a network cut ends its lock session
        time.sleep(0.5)
        assert second.acquire_lock("web", "production", "replica-b", lease_seconds=30).acquired
        assert not first.renew_lock("web", "production", "replica-a", lease_seconds=30)
        assert first.lock_state("web", "production").holder == "replica-b"


def test_the_listener_reconnects_and_wakes_every_waiter(pg_url: str) -> None:
    """A notification sent while the listener was away is lost, so after reconnecting it wakes everyone to read."""
    with opened(pg_url) as writer, opened(pg_url) as reader:
        record = web(writer, status="in_progress")
        heard = threading.Event()
        reader.subscribe(record.id, heard, frozenset({control.CONTROL_EVENT}))
        terminate(pg_url, backend_pids(pg_url, reader)["listener"])
        assert heard.wait(15), "waiters were not woken after the listener reconnected"
        deadline = time.monotonic() + 15
        while "listener" not in backend_pids(pg_url, reader):
            assert time.monotonic() < deadline, "the listener did not reconnect"
            time.sleep(0.05)
        heard.clear()
        writer.append_event(record.id, control.CONTROL_EVENT, "pause requested by bob", {"action": "pause"})
        assert heard.wait(10), "a request after the reconnect did not arrive"


def test_replicas_starting_together_migrate_once_and_a_newer_database_is_refused(pg_url: str) -> None:
    import psycopg

    from deploy_mcp.ledger.pg_schema import SCHEMA_VERSION

    workers = [Worker(pg_url) for _ in range(3)]  # type: ignore[arg-type]
    try:
        assert [worker.receive(timeout=60) for worker in workers] == ["ready"] * 3
    finally:
        for worker in workers:
            worker.stop()
    with opened(pg_url) as ledger:
        assert ledger.schema_version == SCHEMA_VERSION
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE deploy_mcp_schema SET version = %s", (SCHEMA_VERSION + 3,))
    with pytest.raises(LedgerError, match=r"written by a newer deploy-mcp.*pip install -U deploy-mcp"):
        opened(pg_url)


def test_reads_survive_a_lost_connection_and_writes_use_a_new_one(pg_url: str) -> None:
    """A server restart or failover ends the store connection: the next read reconnects and answers."""
    with opened(pg_url) as ledger:
        record = web(ledger, status="in_progress")
        ledger.append_event(record.id, "started", "before the cut")
        terminate(pg_url, backend_pids(pg_url, ledger)["store"])
        assert ledger.get(record.id) == record
        assert [event.kind for event in ledger.events(record.id)] == ["started"]
        ledger.append_event(record.id, "step", "after the cut")
        assert [r.id for r in ledger.list()] == [record.id]
