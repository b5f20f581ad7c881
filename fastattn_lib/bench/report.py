"""What the benchmark reports: ratios to SDPA measured in the same run, slopes, tables and a plot."""

from __future__ import annotations

import math
import statistics

from .timing import METHOD_LABELS, METHODS

SWEEPS = {  # name: what is held fixed while N grows
    "n": "one head, non-causal",
    "causal": "one head, causal",
    "heads": "8 heads, non-causal",
    "heads_causal": "8 heads, causal",
}


def loglog_slope(ns, seconds) -> float:
    """Least-squares slope of log(time) against log(N): 1 is linear, 2 quadratic."""
    x, y = [math.log(n) for n in ns], [math.log(s) for s in seconds]
    mean_x, mean_y = statistics.fmean(x), statistics.fmean(y)
    return sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y, strict=True)) / sum(
        (a - mean_x) ** 2 for a in x
    )


def summarize(results: list[dict], sweep: str = "n") -> dict:
    """For one sweep: each method's ratio to SDPA, crossover N, log-log slope (N ≥ 4096), 4k→16k growth."""
    timed = [r for r in results if "seconds" in r and r.get("sweep") == sweep]
    sdpa = {r["n"]: r["seconds"] for r in timed if r["method"] == "sdpa"}
    summary = {}
    for method in {r["method"] for r in timed}:
        rows = sorted((r["n"], r["seconds"]) for r in timed if r["method"] == method)
        large = [(n, s) for n, s in rows if n >= 4096]
        entry = {
            "speedup_vs_sdpa": {n: sdpa[n] / s for n, s in rows if n in sdpa},
            "slope": loglog_slope(*zip(*large, strict=True)) if len(large) >= 2 else None,
        }
        times = dict(rows)
        if 4096 in times and 16384 in times:
            entry["growth_4k_to_16k"] = times[16384] / times[4096]
        faster = [n for n, ratio in entry["speedup_vs_sdpa"].items() if ratio > 1]
        entry["crossover_n"] = min(faster) if faster else None
        summary[method] = entry
    return summary


def format_table(results: list[dict], sweep: str = "n") -> str:
    rows = [r for r in results if r.get("sweep") == sweep]
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    cell = {(r["method"], r["n"]): r for r in rows}
    lines = [
        "| N | " + " | ".join(f"{m} ms (× vs sdpa)" for m in methods) + " |",
        "|---:|" + "---:|" * len(methods),
    ]
    for n in sorted({r["n"] for r in rows}):
        base = cell.get(("sdpa", n), {}).get("seconds")
        row = []
        for m in methods:
            r = cell.get((m, n), {})
            if "seconds" not in r:
                row.append(r.get("error", "—")[:40])
            else:
                ratio = f" ({base / r['seconds']:.1f}×)" if base else ""
                row.append(f"{1000 * r['seconds']:.1f}{ratio}")
        lines.append(f"| {n} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_split(results: list[dict], sweep: str = "n") -> str:
    lines = [
        "| method | N | hashing ms | bucketing ms | aggregation ms | total / hashing |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = [r for r in results if "split" in r and r.get("sweep") == sweep]
    for r in sorted(rows, key=lambda r: (r["method"], r["n"])):
        split = r["split"]
        lines.append(
            f"| {r['method']} | {r['n']} | {1000 * split['hashing']:.1f} | {1000 * split['bucketing']:.1f} | "
            f"{1000 * split['aggregation']:.1f} | {r['seconds'] / split['hashing']:.2f} |"
        )
    return "\n".join(lines)


def format_memory(results: list[dict]) -> str:
    lines = ["| method | N | ℓ | peak extra MiB |", "|---|---:|---:|---:|"]
    for r in results:
        if r.get("sweep") == "tables" and "peak_extra_bytes" in r:
            lines.append(
                f"| {r['method']} | {r['n']} | {r['n_tables']} | {r['peak_extra_bytes'] / 2**20:.1f} |"
            )
    return "\n".join(lines)


def format_extras(report: dict) -> str:
    """The training step, the panels and the Hadamard collision check, as markdown."""
    lines = []
    step = report.get("training_step")
    if step:
        lines += [
            "| training step (induction heads, batch 32, N = 100) | ms | × the softmax step |",
            "|---|---:|---:|",
            *[
                f"| {name} | {1000 * seconds:.0f} | {seconds / step['softmax']:.1f} |"
                for name, seconds in step.items()
            ],
            "",
        ]
    panels = report.get("panels")
    if panels:
        lines += ["| panel update (each control moved) | median ms | slowest ms | moves |"]
        lines += ["|---|---:|---:|---:|"]
        lines += [
            f"| {name} | {1000 * t['median']:.0f} | {1000 * t['slowest']:.0f} | {t['moves']} |"
            for name, t in panels.items()
        ] + [""]
    collisions = report.get("collisions")
    if collisions:
        lines += [
            "| angle (rad) | dense rotation | Hadamard rotation | ± (1 s.e.) |",
            "|---:|---:|---:|---:|",
        ]
        for row in collisions:
            lines.append(
                f"| {row['angle']:.2f} | {row['dense']:.4f} | {row['hadamard']:.4f} | {row['stderr']:.4f} |"
            )
    return "\n".join(lines)


def markdown(report: dict) -> str:
    """The README's benchmark section, regenerated from a bench.json."""
    results, parts = report["results"], []
    for sweep, title in SWEEPS.items():
        if any(r.get("sweep") == sweep for r in results):
            parts += [f"**{title}**", "", format_table(results, sweep), "", format_split(results, sweep), ""]
    if any(r.get("sweep") == "tables" for r in results):
        parts += ["**peak extra memory against ℓ**", "", format_memory(results), ""]
    return "\n".join(parts) + "\n" + format_extras(report)


def figure(results: list[dict], sweep: str = "n"):
    import plotly.graph_objects as go

    fig = go.Figure()
    for method in METHODS:
        rows = sorted(
            (r["n"], r["seconds"])
            for r in results
            if r["method"] == method and "seconds" in r and r.get("sweep") == sweep
        )
        if rows:
            fig.add_scatter(
                x=[n for n, _ in rows],
                y=[1000 * s for _, s in rows],
                name=METHOD_LABELS[method],
                mode="lines+markers",
            )
    device = next((r["device"] for r in results if "device" in r), "?")
    fig.update_layout(
        title=f"forward time vs sequence length, {SWEEPS.get(sweep, sweep)} ({device})",
        xaxis={"title": "N (tokens)", "type": "log"},
        yaxis={"title": "time (ms)", "type": "log"},
        width=720,
        height=480,
    )
    return fig
