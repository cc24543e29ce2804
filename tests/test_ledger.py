"""The deployment ledger on real files, with real second processes where the promise is about processes."""

from __future__ import annotations

import json
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from deploy_mcp.core.records import DeploymentRecord, Status, Step
from deploy_mcp.ledger import SCHEMA_VERSION, Ledger, LedgerError, open_ledger, parse_id
from deploy_mcp.ledger.base import PROVISIONAL_CLAIM_LEASE
from deploy_mcp.ledger.migrations import migrate

WORKER = Path(__file__).with_name("ledger_worker.py")
DAY = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


class Worker:
    """Another process holding the same ledger file, driven one JSON command at a time."""

    def __init__(self, db: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float = 20) -> Any:
        line = self._lines.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"ledger worker exited with {self.process.wait()}")
        message = json.loads(line)
        if "error" in message:
            raise LedgerError(message["error"])
        return message["ok"]

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.send(op="call", method=method, args=list(args), kwargs=kwargs)
        return self.receive()

    def kill(self) -> int:
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "project" / ".deploy" / "ledger.db"


@pytest.fixture
def ledger(db_path: Path) -> Iterator[Ledger]:
    opened = open_ledger(db_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def start_workers(db_path: Path) -> Iterator[Callable[[int], list[Worker]]]:
    """Start n workers at once (their start-up overlaps) and wait until each has the ledger open."""
    started: list[Worker] = []

    def start(count: int) -> list[Worker]:
        batch = []
        for _ in range(count):
            worker = Worker(db_path)
            started.append(worker)
            batch.append(worker)
        for worker in batch:
            assert worker.receive() == "ready"
        return batch

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def web(ledger: Ledger, **fields: Any) -> DeploymentRecord:
    defaults: dict[str, Any] = {"service": "web", "version": "1.0.0", "environment": "production", "strategy": "canary"}
    return ledger.create(**(defaults | fields))


def raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


# records and events


def test_records_and_events_round_trip_through_the_file(db_path: Path) -> None:
    with open_ledger(db_path) as ledger:
        created = web(
            ledger,
            deployed_by="alice",
            previous_version="0.9.0",
            rollback_of="deploy-2026-11-25-004",
            enterprise={"change_id": "CHG-1", "approved_by": "bob", "escalation_path": ["on-call", "team-lead"]},
            steps=[Step(index=0, name="canary 5%", weight=5)],
        )
        assert created.status is Status.PENDING
        ledger.update(created.id, status=Status.IN_PROGRESS, current_step=0)
        for kind in ("started", "step", "verdict"):
            ledger.append_event(created.id, kind, f"{kind} happened", {"weight": 5, "at": DAY})
    assert db_path.parent.is_dir()

    with open_ledger(db_path) as reopened:
        record = reopened.get(created.id)
        assert record is not None
        assert record == created.model_copy(update={"status": Status.IN_PROGRESS, "current_step": 0})
        assert record.enterprise is not None and record.enterprise.escalation_path == ["on-call", "team-lead"]
        assert record.steps[0].name == "canary 5%"
        events = reopened.events(created.id)
        assert [(event.seq, event.kind) for event in events] == [(1, "started"), (2, "step"), (3, "verdict")]
        assert events[0].data == {"weight": 5, "at": DAY.isoformat().replace("+00:00", "Z")}
        assert reopened.get("deploy-2001-01-01-001") is None
        assert reopened.events("deploy-2001-01-01-001") == []


def test_events_need_an_existing_deployment_and_json_data(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="no deployment 'deploy-2001-01-01-001'"):
        ledger.append_event("deploy-2001-01-01-001", "step", "orphan")
    record = web(ledger)
    with pytest.raises(LedgerError, match="data must hold only JSON values"):
        ledger.append_event(record.id, "step", "bad", {"handle": object()})
    assert ledger.events(record.id) == []


def test_events_cannot_be_rewritten_even_with_sql(ledger: Ledger, db_path: Path) -> None:
    record = web(ledger)
    ledger.append_event(record.id, "started", "go")
    with raw(db_path) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET message = 'rewritten'")
    assert ledger.events(record.id)[0].message == "go"


def test_save_replaces_the_whole_record_and_refuses_unknown_ids(ledger: Ledger) -> None:
    record = web(ledger)
    finished = record.model_copy(update={"status": Status.SUCCEEDED, "duration_seconds": 42.0, "reason": "done"})
    ledger.save(finished)
    assert ledger.get(record.id) == finished
    assert ledger.list(status=Status.SUCCEEDED) == [finished]
    with pytest.raises(LedgerError, match="save: no deployment 'deploy-2001-01-01-001'"):
        ledger.save(finished.model_copy(update={"id": "deploy-2001-01-01-001"}))


def test_list_filters_and_puts_the_newest_first(ledger: Ledger) -> None:
    hour = timedelta(hours=1)
    late = web(ledger, version="3", deployed_at=DAY + 2 * hour)
    early = web(ledger, version="1", deployed_at=DAY)
    middle = web(ledger, version="2", deployed_at=DAY + hour, status="failed")
    staging = web(ledger, version="2", environment="staging", deployed_at=DAY + 3 * hour)
    api = web(ledger, service="api", deployed_at=DAY + 4 * hour)

    assert [r.id for r in ledger.list()] == [api.id, staging.id, late.id, middle.id, early.id]
    assert [r.id for r in ledger.list(service="web", environment="production")] == [late.id, middle.id, early.id]
    assert [r.id for r in ledger.list(status=Status.FAILED)] == [middle.id]
    assert [r.id for r in ledger.list(status="pending", limit=2)] == [api.id, staging.id]
    with pytest.raises(LedgerError, match="status: 'done' is not one of pending, in_progress"):
        ledger.list(status="done")
    with pytest.raises(LedgerError, match="limit: must be at least 1"):
        ledger.list(limit=0)


def test_last_good_skips_failed_and_unvalidated_deployments(ledger: Ledger) -> None:
    passed = {"passed": True, "verdict": "pass"}

    def at(minutes: int, **fields: Any) -> DeploymentRecord:
        return web(ledger, deployed_at=DAY + timedelta(minutes=minutes), **fields)

    good = at(0, version="1", status="succeeded", validation=passed)
    at(1, version="2", status="succeeded")  # never validated
    at(2, version="3", status="failed", validation=passed)
    at(3, version="4", status="rolled_back", validation=passed)
    at(4, version="9", environment="staging", status="succeeded", validation=passed)
    assert ledger.last_good("web", "production") == good

    newer = at(5, version="5", status="succeeded", validation=passed)
    assert ledger.last_good("web", "production") == newer
    assert ledger.last_good("web", "production", before=newer.id) == good
    assert ledger.last_good("web", "production", before=good.id) is None
    assert ledger.last_good("api", "production") is None
    with pytest.raises(LedgerError, match="last_good before: no deployment 'deploy-2001-01-01-009'"):
        ledger.last_good("web", "production", before="deploy-2001-01-01-009")


def test_unfinished_lists_what_a_restarted_server_must_look_at(ledger: Ledger) -> None:
    statuses = ["pending", "in_progress", "paused", "interrupted", "succeeded", "failed", "rolled_back", "aborted"]
    records = {status: web(ledger, status=status) for status in statuses}
    found = {record.id for record in ledger.unfinished()}
    assert found == {records[s].id for s in ("pending", "in_progress", "paused", "interrupted")}


# ids


def test_ids_count_from_001_per_utc_day(ledger: Ledger) -> None:
    first = web(ledger, deployed_at=DAY)
    second = web(ledger, deployed_at=DAY + timedelta(hours=1))
    # 01:30 at +05:00 on the 27th is still the 26th in UTC
    third = web(ledger, deployed_at=datetime(2026, 11, 27, 1, 30, tzinfo=timezone(timedelta(hours=5))))
    next_day = web(ledger, deployed_at=DAY + timedelta(days=1))
    assert [first.id, second.id, third.id, next_day.id] == [
        "deploy-2026-11-26-001",
        "deploy-2026-11-26-002",
        "deploy-2026-11-26-003",
        "deploy-2026-11-27-001",
    ]
    today = web(ledger)
    assert today.id.startswith(f"deploy-{datetime.now(UTC).date().isoformat()}-")
    with pytest.raises(LedgerError, match="id is allocated by the ledger"):
        web(ledger, id="deploy-2026-11-26-777")


def test_ids_grow_past_three_digits_and_still_sort_newest_first(ledger: Ledger, db_path: Path) -> None:
    made = web(ledger, deployed_at=DAY)
    busy_day = "deploy-2026-11-26-999"  # as if 998 more deployments had happened that day
    with raw(db_path) as conn:
        conn.execute(
            "UPDATE deployments SET id = ?, id_number = 999, record = json_set(record, '$.id', ?) WHERE id = ?",
            (busy_day, busy_day, made.id),
        )
    thousandth = web(ledger, deployed_at=DAY)
    assert thousandth.id == "deploy-2026-11-26-1000"
    assert [r.id for r in ledger.list()] == ["deploy-2026-11-26-1000", busy_day]


def test_two_processes_creating_at_once_get_unique_ids(ledger: Ledger, start_workers: Callable) -> None:
    workers = start_workers(2)
    fields = {"service": "web", "version": "2.0.0", "environment": "staging", "strategy": "rolling"}
    for worker in workers:
        worker.send(op="create_many", count=50, fields=fields, pause_seconds=0.002)
    ids = [deployment_id for worker in workers for deployment_id in worker.receive(timeout=30)]

    assert len(ids) == 100 and len(set(ids)) == 100
    numbered = [parsed for i in ids if (parsed := parse_id(i)) is not None]
    if len({day for day, _ in numbered}) == 1:  # a run straddling midnight numbers two days
        assert sorted(number for _, number in numbered) == list(range(1, 101))
    assert all((record := ledger.get(i)) is not None and record.version == "2.0.0" for i in ids)
    assert len(ledger.list(limit=500)) == 100


def test_threads_sharing_one_ledger_get_unique_ids(ledger: Ledger) -> None:
    ids: list[str] = []
    errors: list[BaseException] = []

    def create_some() -> None:
        try:
            for _ in range(20):
                record = web(ledger)
                ledger.append_event(record.id, "created", "by a thread")
                ids.append(record.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(set(ids)) == 80
    assert all(len(ledger.events(i)) == 1 for i in ids)


# locks


def test_only_one_of_two_racing_processes_gets_the_lock(ledger: Ledger, start_workers: Callable) -> None:
    workers = start_workers(2)
    holders = ["pid:1:a", "pid:2:b"]
    for round_number in range(30):
        if round_number % 2:  # race to take over a crashed holder's lapsed lease, not only to insert
            assert ledger.acquire_lock("web", "production", "crashed", lease_seconds=0.001).acquired
            time.sleep(0.005)
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
        winner = winners[0]["holder"]
        assert all(state["holder"] == winner for state in states)  # the loser is told who holds it
        held = ledger.lock_state("web", "production")
        assert held is not None and held.holder == winner
        assert ledger.release_lock("web", "production", winner)


def test_lock_is_renewed_and_released_only_by_its_holder(ledger: Ledger) -> None:
    first = ledger.acquire_lock("web", "production", "pid:1:a", deployment_id="deploy-2026-11-26-001")
    assert first.acquired
    refused = ledger.acquire_lock("web", "production", "pid:2:b", deployment_id="deploy-2026-11-26-002")
    assert not refused.acquired and refused.holder == "pid:1:a"
    assert refused.describe().startswith("deploy-2026-11-26-001 is running for web/production")
    assert ledger.acquire_lock("web", "staging", "pid:2:b").acquired  # another environment is another lock

    assert not ledger.renew_lock("web", "production", "pid:2:b")
    assert not ledger.release_lock("web", "production", "pid:2:b")
    assert ledger.renew_lock("web", "production", "pid:1:a", lease_seconds=120)
    state = ledger.lock_state("web", "production")
    assert state is not None and state.expires_at > first.expires_at + timedelta(seconds=60)
    again = ledger.acquire_lock("web", "production", "pid:1:a")  # re-entrant for the same holder
    assert again.acquired and again.deployment_id == "deploy-2026-11-26-001"

    assert ledger.release_lock("web", "production", "pid:1:a")
    assert ledger.lock_state("web", "production") is None
    assert not ledger.renew_lock("web", "production", "pid:1:a")
    with pytest.raises(LedgerError, match="lease_seconds: must be more than 0"):
        ledger.acquire_lock("web", "production", "pid:1:a", lease_seconds=0)


def test_lease_of_a_killed_holder_expires_then_the_lock_is_free(ledger: Ledger, start_workers: Callable) -> None:
    (holder,) = start_workers(1)
    taken = holder.call(
        "acquire_lock", "web", "production", "pid:1:dead", deployment_id="deploy-2026-11-26-003", lease_seconds=1.0
    )
    assert taken["acquired"]
    assert holder.kill() == -signal.SIGKILL

    before = time.time()
    refused = ledger.acquire_lock("web", "production", "pid:2:next")
    assert not refused.acquired
    assert (refused.holder, refused.deployment_id) == ("pid:1:dead", "deploy-2026-11-26-003")
    assert "deploy-2026-11-26-003 is running" in refused.describe()
    expires = refused.expires_at.timestamp()
    assert before < expires

    deadline = time.monotonic() + 5
    while True:
        before = time.time()
        state = ledger.acquire_lock("web", "production", "pid:2:next", deployment_id="deploy-2026-11-26-004")
        if state.acquired:
            break
        assert before < expires, "refused although the lease had run out"
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    assert time.time() >= expires, "taken over before the lease ran out"
    assert state.holder == "pid:2:next" and state.deployment_id == "deploy-2026-11-26-004"


# schema versions


def test_an_older_ledger_is_migrated_on_open(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    old = DeploymentRecord(id="deploy-2026-11-26-001", service="web", version="1", environment="production",
                           strategy="rolling", deployed_at=DAY)  # fmt: skip
    with raw(db_path) as conn:
        assert migrate(conn, target=1) == 1
        conn.execute(
            "INSERT INTO deployments VALUES (?, '2026-11-26', 1, 'web', 'production', '1', 'pending', ?, ?)",
            (old.id, DAY.isoformat(timespec="microseconds"), old.model_dump_json()),
        )
    conn.close()

    with open_ledger(db_path) as ledger:
        assert ledger.get(old.id) == old
        assert web(ledger, deployed_at=DAY).id == "deploy-2026-11-26-002"
        assert ledger.acquire_lock("web", "production", "pid:1:a").acquired
        assert ledger.add_approval("CHG-1", "web", "production", "alice").id == 1
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_ledger_from_a_newer_deploy_mcp_is_refused_untouched(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    future = SCHEMA_VERSION + 5
    with raw(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {future}")
    conn.close()
    with pytest.raises(LedgerError) as refused:
        open_ledger(db_path)
    message = str(refused.value)
    assert f"schema version {future}" in message and "Upgrade deploy-mcp" in message
    assert "Traceback" not in message
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == future
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_a_file_that_is_not_a_ledger_gives_a_clear_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_text("deploy notes, not a database\n" * 100)
    with pytest.raises(LedgerError, match=r"cannot open the ledger .*move it aside"):
        open_ledger(db_path)


# durability and visibility


def test_wal_mode_and_writes_are_visible_to_another_process(
    ledger: Ledger, db_path: Path, start_workers: Callable
) -> None:
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()

    (other,) = start_workers(1)
    theirs = other.call("create", service="api", version="5", environment="staging", strategy="blue-green")
    assert ledger.get(theirs["id"]) == DeploymentRecord.model_validate(theirs)

    mine = web(ledger)
    ledger.update(mine.id, status="succeeded", validation={"passed": True})
    seen = other.call("last_good", "web", "production")
    assert seen is not None and seen["id"] == mine.id and seen["status"] == "succeeded"


def test_invalid_changes_raise_and_leave_the_record_unchanged(ledger: Ledger) -> None:
    record = web(ledger, status="in_progress")
    with pytest.raises(LedgerError, match=r"status: Input should be 'pending'.*\(got 'bogus'\)"):
        ledger.update(record.id, status="bogus", reason="half of this must not land")
    with pytest.raises(LedgerError, match="color: not a field of a deployment record"):
        ledger.update(record.id, reason="nor this", color="red")
    with pytest.raises(LedgerError, match=re.escape("steps.0.name: required field is missing")):
        ledger.update(record.id, steps=[{"index": 0}])
    with pytest.raises(LedgerError, match="id cannot change"):
        ledger.update(record.id, id="deploy-2001-01-01-001")
    with pytest.raises(LedgerError, match="no deployment 'deploy-2001-01-01-001'"):
        ledger.update("deploy-2001-01-01-001", status="failed")
    broken = record.model_copy()
    broken.status = "exploded"  # type: ignore[assignment]  # assignment is not validated by the model
    with pytest.raises(LedgerError, match="status"):
        ledger.save(broken)
    assert ledger.get(record.id) == record


def test_a_writer_killed_mid_transaction_leaves_nothing_half_written(ledger: Ledger, start_workers: Callable) -> None:
    record = web(ledger, status="in_progress")
    (writer,) = start_workers(1)
    writer.send(op="hang_in_transaction", deployment_id=record.id)
    assert writer.receive() == "in transaction"
    assert writer.kill() == -signal.SIGKILL

    assert ledger.get(record.id) == record
    started = time.monotonic()
    assert ledger.update(record.id, status="succeeded").status is Status.SUCCEEDED  # the write lock died with it
    assert time.monotonic() - started < 2


# approvals and lifecycle


def test_approvals_are_found_only_for_their_change_target_and_lifetime(ledger: Ledger) -> None:
    first = ledger.add_approval("CHG-7", "web", "production", "alice")
    expired = ledger.add_approval("CHG-8", "web", "production", "bob", expires_at=datetime.now(UTC) - timedelta(1))
    later = ledger.add_approval("CHG-7", "web", "production", "carol", expires_at=datetime.now(UTC) + timedelta(1))

    assert ledger.find_approval("CHG-7", "web", "production") == later
    assert ledger.find_approval("CHG-7", "web", "staging") is None
    assert ledger.find_approval("CHG-8", "web", "production") is None
    assert ledger.list_approvals() == [later, expired, first]
    assert ledger.list_approvals(change_id="CHG-7", limit=1) == [later]
    assert not expired.valid_at(datetime.now(UTC)) and first.valid_at(datetime.now(UTC))
    with pytest.raises(LedgerError, match="approved_by: must be non-empty text"):
        ledger.add_approval("CHG-9", "web", "production", " ")


def test_a_closed_ledger_says_so(db_path: Path) -> None:
    with open_ledger(db_path) as ledger:
        record = web(ledger)
    with pytest.raises(LedgerError, match="is closed; open it again"):
        ledger.get(record.id)
    ledger.close()  # closing twice is harmless


def test_an_approval_is_spent_by_one_deployment_and_may_name_its_version(ledger: Ledger, db_path: Path) -> None:
    any_version = ledger.add_approval("CHG-1", "web", "production", "alice")
    only_two = ledger.add_approval("CHG-2", "web", "production", "bob", version="2.0.0")
    assert ledger.find_approval("CHG-2", "web", "production", version="2.0.0") == only_two
    assert ledger.find_approval("CHG-2", "web", "production", version="3.0.0") is None
    assert ledger.find_approval("CHG-1", "web", "production", version="3.0.0") == any_version

    spent = ledger.use_approval(any_version.id, "deploy-2026-11-26-001")
    assert spent is not None and spent.used_by == "deploy-2026-11-26-001" and spent.used_at is not None
    assert ledger.use_approval(any_version.id, "deploy-2026-11-26-002") is None  # a second deployment gets nothing
    assert ledger.find_approval("CHG-1", "web", "production") is None
    assert ledger.find_approval("CHG-1", "web", "production", include_used=True) == spent

    # A claim taken before the deployment has an id moves to the id, or is given back when nothing started.
    assert ledger.use_approval(only_two.id, "starting:a") is not None
    assert not ledger.release_approval(only_two.id, "starting:b")
    assert ledger.release_approval(only_two.id, "starting:a")
    assert ledger.find_approval("CHG-2", "web", "production") == only_two
    assert ledger.use_approval(only_two.id, "starting:c") is not None
    assert ledger.use_approval(only_two.id, "deploy-2026-11-26-003", replacing="starting:x") is None
    moved = ledger.use_approval(only_two.id, "deploy-2026-11-26-003", replacing="starting:c")
    assert moved is not None and moved.used_by == "deploy-2026-11-26-003"

    expired = ledger.add_approval("CHG-3", "web", "production", "carol", expires_at=datetime.now(UTC) - timedelta(1))
    assert ledger.use_approval(expired.id, "deploy-2026-11-26-004") is None
    with pytest.raises(LedgerError, match="version: must be non-empty text"):
        ledger.add_approval("CHG-4", "web", "production", "dan", version=" ")
    with open_ledger(db_path) as again:  # what another process reads
        assert again.list_approvals(change_id="CHG-2") == [moved]


def claimed_ago(db: Path, approval_id: int, seconds: float) -> None:
    """Backdate an approval's claim, as if the process that took it had died ``seconds`` ago."""
    moment = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="microseconds")
    conn = raw(db)
    try:
        conn.execute("UPDATE approvals SET used_at = ? WHERE id = ?", (moment, approval_id))
    finally:
        conn.close()


def test_a_provisional_claim_whose_process_died_lapses_after_its_lease(ledger: Ledger, db_path: Path) -> None:
    approval = ledger.add_approval("CHG-1", "web", "production", "alice")
    assert ledger.use_approval(approval.id, "starting:dead") is not None
    claimed_ago(db_path, approval.id, PROVISIONAL_CLAIM_LEASE - 30)  # still starting: it holds the approval
    assert ledger.find_approval("CHG-1", "web", "production") is None
    assert ledger.use_approval(approval.id, "starting:next") is None

    claimed_ago(db_path, approval.id, PROVISIONAL_CLAIM_LEASE + 1)  # its process died: the approval is free again
    found = ledger.find_approval("CHG-1", "web", "production")
    assert found is not None and not found.used and found.used_at is None
    assert ledger.list_approvals(change_id="CHG-1") == [found]
    taken = ledger.use_approval(approval.id, "starting:next")
    assert taken is not None and taken.used_by == "starting:next" and taken.provisional
    assert ledger.use_approval(approval.id, "starting:third") is None  # taken over once, freshly claimed
    assert ledger.use_approval(approval.id, "deploy-2026-11-26-001", replacing="starting:dead") is None
    assert not ledger.release_approval(approval.id, "starting:dead")
    assert ledger.use_approval(approval.id, "deploy-2026-11-26-001", replacing="starting:next") is not None

    # A deployment's own claim never lapses, however old.
    claimed_ago(db_path, approval.id, PROVISIONAL_CLAIM_LEASE * 100)
    assert ledger.find_approval("CHG-1", "web", "production") is None
    assert ledger.use_approval(approval.id, "starting:late") is None
    spent = ledger.find_approval("CHG-1", "web", "production", include_used=True)
    assert spent is not None and spent.used_by == "deploy-2026-11-26-001" and not spent.provisional


def test_approvals_of_a_version_3_ledger_survive_the_migration_unspent(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with raw(db_path) as conn:
        assert migrate(conn, target=3) == 3
        conn.execute(
            "INSERT INTO approvals (change_id, service, environment, approved_by, approved_at) "
            "VALUES ('CHG-1', 'web', 'production', 'alice', ?)",
            (DAY.isoformat(timespec="microseconds"),),
        )
    conn.close()
    with open_ledger(db_path) as ledger:
        found = ledger.find_approval("CHG-1", "web", "production", version="9.9.9")
        assert found is not None and found.version is None and not found.used


def test_of_two_processes_spending_one_approval_only_one_gets_it(ledger: Ledger, start_workers: Callable) -> None:
    approval = ledger.add_approval("CHG-1", "web", "production", "alice")
    workers = start_workers(2)
    for number, worker in enumerate(workers, start=1):
        worker.send(op="call", method="use_approval", args=[approval.id, f"deploy-2026-11-26-00{number}"], kwargs={})
    results = [worker.receive() for worker in workers]
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert ledger.find_approval("CHG-1", "web", "production", include_used=True).used_by == winners[0]["used_by"]
