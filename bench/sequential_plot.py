"""Plot the sequential analysis of a real run: each test's statistic against its boundary, look by look.

Runs hello on the local platform in a temporary project under steady load (200 requests/s), sends 10% of the
traffic to a new version beside the stable one, and runs the sequential analysis itself against the router's own
metrics, recording every look. Three times: a good release (1.1.0) through its whole bake, a bad one (2.0.0, one
request in five fails) and a regression (2.1.0, one in fifty: under the 5% critical level, above the stable
version's none) until a test stops it. The samples go to a JSON file and the plot to an SVG (hand-drawn:
no plotting library needed), both committed to the docs:

  python bench/sequential_plot.py [--out docs/public/sequential-run] [--bake 10] [--rate 200]
  python bench/sequential_plot.py --from-json docs/public/sequential-run.json   # redraw only
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy_mcp.config.loader import load_project  # noqa: E402
from deploy_mcp.core.analysis import Measurement  # noqa: E402
from deploy_mcp.core.sequential import SequentialRun, run_sequential  # noqa: E402
from deploy_mcp.core.target import Release  # noqa: E402
from deploy_mcp.signals.metrics import LocalRouterMetrics  # noqa: E402
from deploy_mcp.targets.local.loadgen import BackgroundLoad  # noqa: E402
from deploy_mcp.targets.local.platform import create_platform  # noqa: E402

HELLO = ROOT / "examples" / "hello" / "server.py"
SERVICE, ENVIRONMENT = "hello", "canary"
STABLE = "1.0.0"
RELEASES = {
    "1.1.0": "good release (1.1.0)",
    "2.0.0": "bad release (2.0.0, 20% errors)",
    "2.1.0": "regression (2.1.0, 2% errors)",
}
SHARE = 10
SERIES = {"error_rate": ("error rate vs warn", "#c0392b"), "baseline_error_rate": ("vs baseline", "#2471a3")}


def record_run(bake: float, rate: float) -> dict[str, Any]:
    """Both releases, each as a canary at SHARE% beside the stable version; every look's evidence."""
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="deploy-mcp-plot-") as folder:
        config = f"""
[services.hello]
command = {json.dumps(["{python}", str(HELLO), "--port", "{port}"])}
replicas = 2
health = "/health"

[services.hello.versions."2.0.0"]
env = {{ ERROR_RATE = "0.2" }}

[services.hello.versions."2.1.0"]
env = {{ ERROR_RATE = "0.02" }}

[services.hello.environments.{ENVIRONMENT}]
strategy = "canary"
analysis = {{ bake = "{bake:g}s", interval = "1s", min_requests = 20 }}
"""
        (Path(folder) / "deploy.toml").write_text(config, encoding="utf-8")
        project = load_project(Path(folder) / "deploy.toml")
        service = project.config.services[SERVICE]
        environment = service.environments[ENVIRONMENT]
        thresholds = project.config.thresholds_for(SERVICE, ENVIRONMENT)
        target = create_platform(project, health_interval=0.5)
        try:
            target.workload.start_version(SERVICE, ENVIRONMENT, Release.resolve(SERVICE, service, STABLE), 2)
            load = BackgroundLoad(target.endpoint(SERVICE, ENVIRONMENT).rstrip("/") + "/", rate=rate).start()
            try:
                for version in RELEASES:
                    target.workload.start_version(SERVICE, ENVIRONMENT, Release.resolve(SERVICE, service, version), 1)
                    target.router.set_weights(SERVICE, ENVIRONMENT, {STABLE: 100 - SHARE, version: SHARE})
                    looks: list[dict[str, Any]] = []

                    def seen(measurement: Measurement, run: SequentialRun, looks: list = looks) -> None:
                        canary = measurement.canary
                        looks.append(
                            {
                                "elapsed": round(measurement.elapsed, 3),
                                "phase": measurement.phase.value,
                                "requests": canary.requests if canary else 0,
                                "errors": canary.errors if canary else 0,
                                **measurement.statistics,
                            }
                        )

                    outcome = run_sequential(
                        LocalRouterMetrics(target.metrics),
                        SERVICE,
                        ENVIRONMENT,
                        version,
                        STABLE,
                        thresholds,
                        environment.analysis,
                        bake,
                        1.0,
                        look_every_s=LocalRouterMetrics.sample_seconds,
                        on_look=seen,
                    )
                    runs[version] = {"phase": outcome.phase.value, "reason": outcome.reason, "looks": looks}
                    target.router.set_weights(SERVICE, ENVIRONMENT, {STABLE: 100, version: 0})
                    target.workload.stop_version(SERVICE, ENVIRONMENT, version, drain_timeout=0.5)
                    print(f"{version}: {outcome.phase.value} after {len(looks)} looks: {outcome.reason}", flush=True)
            finally:
                result = load.stop()
        finally:
            for name, env in target.environments():
                target.stop(name, env, drain_timeout=0.5)
    return {
        "rate": rate,
        "share": SHARE,
        "bake": bake,
        "confidence": environment.analysis.confidence,
        "requests": result.requests,
        "runs": runs,
    }


# -- drawing ------------------------------------------------------------------------------------------------------

WIDTH, HEIGHT, PANEL_GAP = 1260, 380, 30
MARGIN = {"left": 58, "right": 16, "top": 46, "bottom": 70}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low
    step = 10 ** math.floor(math.log10(span / count))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [round(first + i * step, 6) for i in range(int((high - first) / step) + 1)]


def panel(data: dict[str, Any], version: str, x0: float, width: float) -> list[str]:
    run = data["runs"][version]
    looks = run["looks"]
    inner_w = width - MARGIN["left"] - MARGIN["right"]
    inner_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    top = MARGIN["top"]
    left = x0 + MARGIN["left"]
    x_max = max(data["bake"] if run["phase"] == "Successful" else looks[-1]["elapsed"] * 1.15, 0.5)
    values = [look["log_lr"].get(name) for look in looks for name in SERIES if name in look.get("log_lr", {})]
    boundaries = {name: looks[-1]["boundary"][name] for name in SERIES if name in looks[-1].get("boundary", {})}
    y_low = max(min([v for v in values if v is not None] + [0.0]), -14.0)
    y_high = max([*values, *boundaries.values()]) + 1.0
    y_low = min(y_low, -1.0)

    def x(value: float) -> float:
        return left + inner_w * value / x_max

    def y(value: float) -> float:
        value = max(y_low, min(y_high, value))
        return top + inner_h * (y_high - value) / (y_high - y_low)

    out = ['<g font-family="sans-serif" font-size="12" fill="#222">']
    title = RELEASES[version]
    out.append(f'<text x="{left}" y="{top - 26}" font-size="14" font-weight="bold">{_escape(title)}</text>')
    ended = f"{run['phase']} at {looks[-1]['elapsed']:.2f} s, {looks[-1]['errors']} errors in {looks[-1]['requests']}"
    out.append(f'<text x="{left}" y="{top - 10}" fill="#555">{_escape(ended)} requests, {len(looks)} looks</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#999"/>')
    for tick in _nice_ticks(y_low, y_high):
        out.append(f'<line x1="{left}" x2="{left + inner_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in _nice_ticks(0, x_max):
        out.append(f'<text x="{x(tick):.1f}" y="{top + inner_h + 16}" text-anchor="middle">{tick:g}</text>')
    out.append(
        f'<text x="{left + inner_w / 2}" y="{top + inner_h + 34}" text-anchor="middle">seconds since the step '
        "began</text>"
    )
    out.append(
        f'<text transform="translate({x0 + 16},{top + inner_h / 2}) rotate(-90)" text-anchor="middle">'
        "log likelihood ratio</text>"
    )
    for name, (_label, colour) in SERIES.items():
        if name in boundaries:
            level = y(boundaries[name])
            out.append(
                f'<line x1="{left}" x2="{left + inner_w}" y1="{level:.1f}" y2="{level:.1f}" stroke="{colour}" '
                'stroke-dasharray="6 4"/>'
            )
        points = f"{x(0):.1f},{y(0):.1f} " + " ".join(  # before any request the evidence is 1: log 0
            f"{x(look['elapsed']):.1f},{y(look['log_lr'][name]):.1f}" for look in looks if name in look["log_lr"]
        )
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    legend_y = top + inner_h + 52
    for i, (label, colour) in enumerate(SERIES.values()):
        lx = left + i * 150
        out.append(
            f'<line x1="{lx}" x2="{lx + 22}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="{colour}" '
            'stroke-width="2"/>'
        )
        out.append(f'<text x="{lx + 28}" y="{legend_y}">{_escape(label)}</text>')
    out.append(f'<text x="{left}" y="{legend_y + 16}" fill="#555">dashed: each test\'s boundary</text>')
    out.append("</g>")
    return out


def draw(data: dict[str, Any]) -> str:
    width = (WIDTH - PANEL_GAP * (len(RELEASES) - 1)) / len(RELEASES)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
    ]
    for i, version in enumerate(RELEASES):
        parts += panel(data, version, i * (width + PANEL_GAP), width)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def to_json(data: dict[str, Any]) -> str:
    """Readable and compact: the settings indented, one look per line."""
    skeleton = json.loads(json.dumps(data))
    for version in skeleton["runs"]:
        skeleton["runs"][version]["looks"] = f"@looks:{version}@"
    text = json.dumps(skeleton, indent=1)
    for version, run in data["runs"].items():
        lines = ",\n".join("   " + json.dumps(look, separators=(",", ":")) for look in run["looks"])
        text = text.replace(f'"@looks:{version}@"', "[\n" + lines + "\n  ]")
    return text + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "public" / "sequential-run"), help="path without suffix")
    parser.add_argument("--bake", type=float, default=30.0, help="bake per release in seconds (default 30)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--from-json", help="redraw from recorded samples instead of running")
    args = parser.parse_args()
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        out = Path(args.from_json).with_suffix("")
    else:
        data = record_run(args.bake, args.rate)
        out = Path(args.out)
        out.with_suffix(".json").write_text(to_json(data), encoding="utf-8")
    out.with_suffix(".svg").write_text(draw(data), encoding="utf-8")
    print(f"wrote {out.with_suffix('.svg')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
