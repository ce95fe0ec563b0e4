"""PNG charts of a run (matplotlib, Agg backend): throughput, scaling, memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.scenarios.common import dig

Results = dict[str, dict[str, Any]]


def _throughput(results: Results, path: Path) -> bool:
    runs = [("broker", dig(results, "throughput", "broker", "jobs_per_s")),
            ("broker (httpx-aiohttp)",
             dig(results, "transport", "runs", "aiohttp", "jobs_per_s")),
            ("broker (httpx)", dig(results, "transport", "runs", "httpx", "jobs_per_s")),
            ("naive Celery", dig(results, "baselines", "naive", "jobs_per_s")),
            ("ceiling aiohttp", dig(results, "baselines", "ceiling_aiohttp", "jobs_per_s")),
            ("ceiling httpx", dig(results, "baselines", "ceiling_httpx", "jobs_per_s"))]
    present = [(name, float(value)) for name, value in runs if value is not None]
    if not present:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh([n for n, _ in present][::-1], [v for _, v in present][::-1], color="#4472c4")
    for index, (_, value) in enumerate(present[::-1]):
        ax.text(value, index, f" {value:,.0f}", va="center", fontsize=8)
    ax.set_xlabel("jobs/s (50 ms upstream, 256 in flight)")
    ax.set_title("Throughput, same run, same upstream")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _scaling(results: Results, path: Path) -> bool:
    scaling = results.get("scaling")
    if not scaling or "error" in scaling:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    procs = scaling["by_processes"]
    left.plot([p["processes"] for p in procs], [p["jobs_per_s"] for p in procs], "o-")
    left.set_xlabel("model-worker processes (capacity 256)")
    left.set_ylabel("jobs/s")
    left.set_xticks([p["processes"] for p in procs])
    caps = scaling["by_capacity"]
    right.plot([p["capacity"] for p in caps], [p["jobs_per_s"] for p in caps], "o-",
               label="broker")
    right.plot([p["capacity"] for p in caps], [p["limit_jobs_per_s"] for p in caps], "--",
               color="grey", label="capacity / latency")
    right.set_xscale("log", base=2)
    right.set_xlabel("capacity (1 model process)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle("Scaling")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _memory(results: Results, path: Path) -> bool:
    memory = results.get("memory")
    if not memory or "error" in memory or not memory.get("rounds"):
        return False
    fig, ax = plt.subplots(figsize=(6, 3.2))
    points = [0] + [r["jobs_so_far"] for r in memory["rounds"]]
    for group in ("gateway", "model"):
        values = [memory["idle_mb"][group]] + [r["rss_after_mb"][group]
                                               for r in memory["rounds"]]
        ax.plot(points, values, "o-", label=f"{group} worker")
    ax.set_xlabel("jobs run")
    ax.set_ylabel("RSS MiB")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Worker RSS after each round")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def draw(out: Path, stem: str, results: Results) -> dict[str, Path]:
    """Every chart the results allow, as `<stem>-<name>.png`."""
    drawn: dict[str, Path] = {}
    for name, painter in (("throughput", _throughput), ("scaling", _scaling),
                          ("memory", _memory)):
        path = out / f"{stem}-{name}.png"
        if painter(results, path):
            drawn[name] = path
    return drawn
