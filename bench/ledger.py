"""How fast the ledger answers at 100,000 deployments: SQLite and PostgreSQL side by side, in one run.

Fills each backend with the same 100,000 deployment records (20 services x 3 environments over two years, with
steps and verdicts as the runner writes them) and their events (8 each: 800,000), then measures what an agent's
calls cost, through the tool functions themselves (everything but the MCP transport):

  history ...        deployment_history with the filters and limits agents use
  status             deployment_status of a random deployment (record, its events, the platform state)
  lock round trip    acquire_lock + release_lock of a random service/environment

Both backends run each query in turn, interleaved, so both see the same machine. Target: p95 <= 10 ms for
history and status on both, for pages of up to 100 records (agents ask for 20 by default). A page of 500 is
measured too, without a target: turning 500 stored records back into records costs Python tens of milliseconds
whatever the database does. The fill goes through bulk SQL (executemany / COPY) into the schema each backend
created itself: 100,000 create() calls would only measure the fill.

PostgreSQL: pass --postgres URL for a database you own (it must be empty), or let the script start a throwaway
cluster as the tests do (initdb from PATH or /usr/lib/postgresql/*/bin).

    python bench/ledger.py [--records 100000] [--queries 200] [--rounds 3] [--postgres URL] [--check]

(--check exits 1 when a target is missed.)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from deploy_mcp.app import App  # noqa: E402
from deploy_mcp.core.records import DeploymentRecord, Status, Step, Validation, Verdict  # noqa: E402
from deploy_mcp.ledger import open_ledger  # noqa: E402
from deploy_mcp.ledger.ids import format_id  # noqa: E402
from deploy_mcp.tools.history import deployment_history  # noqa: E402
from deploy_mcp.tools.steering import deployment_status  # noqa: E402

SERVICES = [f"svc{n:02d}" for n in range(20)]
ENVIRONMENTS = ["staging", "canary", "production"]
EVENTS_PER_RECORD = 8
TARGET_P95_MS = 10.0
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=730)
# Mostly succeeded, as in life; a few interrupted ones stay unfinished (and cost every reader one query).
STATUSES = [Status.SUCCEEDED] * 85 + [Status.ROLLED_BACK] * 6 + [Status.FAILED] * 5 + [Status.ABORTED] * 4


def config_text(ledger: str | None) -> str:
    lines = [f'ledger = "{ledger}"'] if ledger else []
    for service in SERVICES:
        lines.append(f'[services.{service}]\ncommand = ["python", "-m", "http.server", "{{port}}"]')
        for index, environment in enumerate(ENVIRONMENTS):
            lines.append(f"[services.{service}.environments.{environment}]\nport = {20000 + index}")
    return "\n".join(lines) + "\n"


# -- the data ------------------------------------------------------------------------------------------------------


def records(count: int, seed: int = 7) -> Iterator[tuple[DeploymentRecord, list[tuple[datetime, str, str, str]]]]:
    """The same deployments for both backends, oldest first, each with its events."""
    rng = random.Random(seed)
    step_names = ["start", "wait_ready", "set_weights", "analyze", "set_weights", "analyze", "set_weights", "scale"]
    per_day: dict[str, int] = {}
    moments = sorted(START + SPAN * rng.random() for _ in range(count))
    for number, moment in enumerate(moments):
        day = moment.date()
        per_day[day.isoformat()] = per_day.get(day.isoformat(), 0) + 1
        status = Status.INTERRUPTED if number % 25_000 == 0 else rng.choice(STATUSES)
        version = f"{number // 100}.{number % 100}.0"
        passed = status is Status.SUCCEEDED
        steps = [
            Step(
                index=i + 1,
                name=name,
                detail=f"{name} {version}",
                weight=25 * (i // 2 + 1) if "weights" in name else None,
                status="succeeded",
                started_at=moment,
                finished_at=moment + timedelta(seconds=20),
            )
            for i, name in enumerate(step_names)
        ]
        record = DeploymentRecord(
            id=format_id(day, per_day[day.isoformat()]),
            service=rng.choice(SERVICES),
            environment=rng.choice(ENVIRONMENTS),
            version=version,
            strategy="canary",
            status=status,
            deployed_at=moment,
            finished_at=moment + timedelta(minutes=3),
            deployed_by="agent",
            previous_version=f"{max(0, number - 1) // 100}.{max(0, number - 1) % 100}.0",
            validation=Validation(
                health_check="3/3 healthy",
                smoke_tests="2/2 passed",
                error_rate=0.001,
                latency_p95_ms=120.0,
                verdict="pass" if passed else "fail",
                passed=passed,
            ),
            steps=steps,
            verdicts=[Verdict(step=4, phase="Successful", reason="error rate 0.1% <= 1%", at=moment)],
        )
        events = [
            (moment + timedelta(seconds=i), kind, f"{kind} {version}", json.dumps({"step": i}))
            for i, kind in enumerate(["started", *(f"step_{s}" for s in step_names[:-1])][:EVENTS_PER_RECORD])
        ]
        yield record, events


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def fill_sqlite(path: Path, data: list[tuple[DeploymentRecord, list[Any]]]) -> None:
    open_ledger(path).close()  # the schema, as the backend creates it
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO deployments (id, id_day, id_number, service, environment, version, status, deployed_at, record) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (
                r.id,
                r.id[7:17],
                int(r.id[18:]),
                r.service,
                r.environment,
                r.version,
                r.status.value,
                _utc_text(r.deployed_at),
                r.model_dump_json(),
            )
            for r, _ in data
        ),
    )
    conn.executemany(
        "INSERT INTO events (deployment_id, seq, at, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
        (
            (r.id, seq, _utc_text(at), kind, message, payload)
            for r, events in data
            for seq, (at, kind, message, payload) in enumerate(events, start=1)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def fill_postgres(url: str, data: list[tuple[DeploymentRecord, list[Any]]]) -> None:
    import psycopg

    open_ledger(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cursor:
            with cursor.copy(
                "COPY deployments (id, id_day, id_number, service, environment, version, status, deployed_at, record) "
                "FROM STDIN"
            ) as copy:
                for r, _ in data:
                    copy.write_row(
                        (
                            r.id,
                            r.id[7:17],
                            int(r.id[18:]),
                            r.service,
                            r.environment,
                            r.version,
                            r.status.value,
                            r.deployed_at,
                            r.model_dump_json(),
                        )
                    )
            with cursor.copy("COPY events (deployment_id, seq, at, kind, message, data) FROM STDIN") as copy:
                for r, events in data:
                    for seq, (at, kind, message, payload) in enumerate(events, start=1):
                        copy.write_row((r.id, seq, at, kind, message, payload))
        conn.execute("VACUUM ANALYZE deployments")
        conn.execute("VACUUM ANALYZE events")


# -- measuring -----------------------------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def workload(ids: list[str]) -> dict[str, Callable[[App, random.Random], object]]:
    def lock_round_trip(app: App, rng: random.Random) -> object:
        ledger = app.ledger()
        service, environment = rng.choice(SERVICES), rng.choice(ENVIRONMENTS)
        assert ledger.acquire_lock(service, environment, "bench", lease_seconds=30).acquired
        return ledger.release_lock(service, environment, "bench")

    return {
        "history (no filter, limit 20)": lambda app, rng: deployment_history(app),
        "history service (limit 20)": lambda app, rng: deployment_history(app, service=rng.choice(SERVICES)),
        "history service+env (limit 20)": lambda app, rng: deployment_history(
            app, service=rng.choice(SERVICES), environment=rng.choice(ENVIRONMENTS)
        ),
        "history status=failed (limit 20)": lambda app, rng: deployment_history(app, status=Status.FAILED),
        "history env+status (limit 100)": lambda app, rng: deployment_history(
            app, environment=rng.choice(ENVIRONMENTS), status=Status.ROLLED_BACK, limit=100
        ),
        "history service (limit 500)": lambda app, rng: deployment_history(
            app, service=rng.choice(SERVICES), limit=500
        ),
        "status (random deployment)": lambda app, rng: deployment_status(app, rng.choice(ids)),
        "lock round trip": lock_round_trip,
    }


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A cluster of its own, as the tests start one (tests/postgres_fixture.py)."""
    from postgres_fixture import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL is not installed: pass --postgres URL, or install it (scripts/setup.sh does)")
    server = PostgresServer(binaries).start()
    try:
        with server.connect() as admin:
            admin.execute("CREATE DATABASE bench")
        yield f"postgresql://postgres@127.0.0.1:{server.port}/bench"
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="samples of each query per backend and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows the median round")
    parser.add_argument("--postgres", help="an empty PostgreSQL database to fill (default: a throwaway cluster)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a p95 target is missed")
    args = parser.parse_args()

    started = time.perf_counter()
    data = list(records(args.records))
    ids = [record.id for record, _ in data]
    print(
        f"built {len(data):,} records with {len(data) * EVENTS_PER_RECORD:,} events in "
        f"{time.perf_counter() - started:.1f} s"
    )

    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        url = args.postgres or stack.enter_context(throwaway_postgres())
        projects: dict[str, App] = {}
        for name, ledger in (("sqlite", None), ("postgresql", url)):
            root = Path(folder) / name
            root.mkdir()
            (root / "deploy.toml").write_text(config_text(ledger), encoding="utf-8")
            app = App.load(root / "deploy.toml")
            stack.callback(app.close)
            started = time.perf_counter()
            if ledger is None:
                fill_sqlite(app.ledger_path, data)
            else:
                fill_postgres(ledger, data)
            print(f"filled {name} in {time.perf_counter() - started:.1f} s")
            projects[name] = app
        del data

        rng = random.Random(11)
        queries = workload(ids)
        # The bench holds 100,000 ids a server never would; frozen, the garbage collector stops walking them in
        # the middle of a measured query (a full collection over them costs more than the queries themselves).
        gc.collect()
        gc.freeze()
        for app in projects.values():  # warm: connections, the runner, page caches
            for query in queries.values():
                query(app, rng)
        # rounds[i][label][backend]: one round runs every query --queries times on both backends, interleaved
        rounds: list[dict[str, dict[str, list[float]]]] = []
        for _ in range(args.rounds):
            samples: dict[str, dict[str, list[float]]] = {}
            for label, query in queries.items():
                samples[label] = {name: [] for name in projects}
                for _ in range(args.queries):
                    for name, app in projects.items():  # interleaved: both see the same machine
                        samples[label][name].append(timed(lambda q=query, a=app: q(a, rng)))
            rounds.append(samples)

    missed = report(rounds)
    return 1 if args.check and missed else 0


def report(rounds: list[dict[str, dict[str, list[float]]]]) -> list[str]:
    """Each cell is the median over the rounds of that round's p50 or p95: load from other programs comes in
    bursts, and one burst must not decide the result (every round's numbers are printed below the table)."""
    out = io.StringIO()
    header = f"{'query':34} {'sqlite p50':>11} {'sqlite p95':>11} {'postgres p50':>13} {'postgres p95':>13}"
    out.write(header + "\n" + "-" * len(header) + "\n")
    missed: list[str] = []
    labels = list(rounds[0])
    targeted = [label for label in labels if not label.startswith("lock") and "limit 500" not in label]
    per_round: list[str] = []
    for label in labels:
        cells = []
        for name in ("sqlite", "postgresql"):
            p50s = [percentile(samples[label][name], 0.5) for samples in rounds]
            p95s = [percentile(samples[label][name], 0.95) for samples in rounds]
            p50, p95 = statistics.median(p50s), statistics.median(p95s)
            cells += [p50, p95]
            per_round.append(f"{label} on {name}: p95 " + ", ".join(f"{value:.2f}" for value in p95s) + " ms")
            if label in targeted and p95 > TARGET_P95_MS:
                missed.append(f"{label} on {name}: p95 {p95:.2f} ms")
        note = "" if label in targeted else "  (no target)"
        out.write(f"{label:34} {cells[0]:9.2f}ms {cells[1]:9.2f}ms {cells[2]:11.2f}ms {cells[3]:11.2f}ms{note}\n")
    out.write(
        textwrap.dedent(f"""
        target: p95 <= {TARGET_P95_MS:g} ms for history (pages up to 100) and status on both backends: """)
        + ("met" if not missed else "MISSED: " + "; ".join(missed))
        + "\n"
    )
    print(out.getvalue())
    print(f"each round's p95 ({len(rounds)} rounds):")
    print("\n".join(f"  {line}" for line in per_round))
    return missed


if __name__ == "__main__":
    raise SystemExit(main())
