"""How much the local platform's router costs: through the router against straight to the instance, same run.

Starts the example service (one instance of hello) behind a real local-platform router in a temporary project,
then alternates direct and routed runs so that both see the same machine state:

  latency     one connection, one request at a time: p50 and p99 of each, and what the router adds
  throughput  64 concurrent keep-alive connections, as fast as they are answered: requests per second

Targets: the router adds at most 1 ms at p50, and keeps at least 50% of direct throughput at 64 connections.
Run from the repository root:  python bench/router.py [--seconds 4] [--rounds 3] [--check]
(--check exits 1 when a target is missed.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy_mcp.config.loader import load_project  # noqa: E402
from deploy_mcp.core.target import Release  # noqa: E402
from deploy_mcp.targets.local.loadgen import LoadResult, run_load  # noqa: E402
from deploy_mcp.targets.local.platform import create_platform  # noqa: E402

HELLO = ROOT / "examples" / "hello" / "server.py"
P50_BUDGET_MS = 1.0
THROUGHPUT_FLOOR = 0.5


def _project(folder: Path) -> Path:
    config = textwrap.dedent(
        f"""\
        [services.bench]
        command = ["{{python}}", {str(HELLO)!r}, "--port", "{{port}}"]
        replicas = 1

        [services.bench.environments.bench]
        """
    ).replace("'", '"')
    (folder / "deploy.toml").write_text(config, encoding="utf-8")
    return folder / "deploy.toml"


async def _measure(url: str, concurrency: int, seconds: float) -> LoadResult:
    return await run_load(url, concurrency=concurrency, duration=seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each measured run")
    parser.add_argument("--rounds", type=int, default=3, help="direct/router pairs per measurement")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="deploy-mcp-bench-") as folder:
        project = load_project(_project(Path(folder)))
        target = create_platform(project, health_interval=1.0)
        release = Release.resolve("bench", project.config.services["bench"], "1.0.0")
        target.workload.start_version("bench", "bench", release, 1)
        try:
            state = target.state("bench", "bench")
            instance = state.versions[0].instances[0]
            direct = f"{instance.url}/"
            routed = f"{state.endpoint}/"
            print(f"instance {direct}  router {routed}  ({args.rounds} rounds of {args.seconds:g} s per run)")
            asyncio.run(_measure(routed, 8, 1.0))  # warm both paths and the connection pools
            asyncio.run(_measure(direct, 8, 1.0))

            latency = {"direct": [], "router": []}
            throughput = {"direct": [], "router": []}
            for _ in range(args.rounds):
                for name, url in (("direct", direct), ("router", routed)):
                    latency[name].append(asyncio.run(_measure(url, 1, args.seconds)))
                for name, url in (("direct", direct), ("router", routed)):
                    throughput[name].append(asyncio.run(_measure(url, args.connections, args.seconds)))
        finally:
            target.stop("bench", "bench")

    def median(results: list[LoadResult], key: str) -> float:
        values = {
            "p50": [r.percentile_ms(0.5) for r in results],
            "p99": [r.percentile_ms(0.99) for r in results],
            "rps": [r.throughput for r in results],
            "failed": [float(r.failures) for r in results],
        }[key]
        return statistics.median(values)

    p50_direct, p50_router = median(latency["direct"], "p50"), median(latency["router"], "p50")
    p99_direct, p99_router = median(latency["direct"], "p99"), median(latency["router"], "p99")
    rps_direct, rps_router = median(throughput["direct"], "rps"), median(throughput["router"], "rps")
    c_p50_direct, c_p50_router = median(throughput["direct"], "p50"), median(throughput["router"], "p50")
    c_p99_direct, c_p99_router = median(throughput["direct"], "p99"), median(throughput["router"], "p99")
    failed = sum(r.failures for group in (latency, throughput) for runs in group.values() for r in runs)
    added = p50_router - p50_direct
    ratio = rps_router / rps_direct if rps_direct else 0.0

    print()
    print(f"{'':28}{'direct':>12}{'router':>12}")
    print(f"{'1 connection   p50 ms':28}{p50_direct:12.3f}{p50_router:12.3f}")
    print(f"{'1 connection   p99 ms':28}{p99_direct:12.3f}{p99_router:12.3f}")
    print(f"{f'{args.connections} connections req/s':28}{rps_direct:12.0f}{rps_router:12.0f}")
    print(f"{f'{args.connections} connections p50 ms':28}{c_p50_direct:12.2f}{c_p50_router:12.2f}")
    print(f"{f'{args.connections} connections p99 ms':28}{c_p99_direct:12.2f}{c_p99_router:12.2f}")
    print()
    p50_ok = added <= P50_BUDGET_MS
    ratio_ok = ratio >= THROUGHPUT_FLOOR
    print(f"router adds {added:.3f} ms at p50 (budget {P50_BUDGET_MS:g} ms): {'ok' if p50_ok else 'MISSED'}")
    print(
        f"router keeps {ratio:.2f} of direct throughput at {args.connections} connections "
        f"(floor {THROUGHPUT_FLOOR:.2f}): {'ok' if ratio_ok else 'MISSED'}"
    )
    print(f"failed requests: {failed}")
    if args.check and not (p50_ok and ratio_ok and failed == 0):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
