"""`python -m fastattn_lib.bench`: forward time and peak extra memory of attention as N grows.

Methods, all on q, k, v of shape [1, 1, N, m] (one batch entry, one head):

* `sdpa`: torch's fused `scaled_dot_product_attention` (the flash kernel on CPU and GPU), the baseline;
* `anna_tables`, `anna_linear_memory`: `attention.anna_attention`, Algorithms 1 and 2;
* `reformer`: reformer-pytorch's `LSHAttention` with Reformer's `n_hashes` = our ℓ and buckets of 64
  (the optional `bench` extra; skipped with a note when it is not installed).

Each (method, N) runs in a fresh child process, so one method's allocations cannot inflate another's
memory figure: a warm-up call, then the median of `--repeats` timed calls (CUDA synchronised). Peak extra
memory is what the first call at N adds, after a call at a small N has loaded what every call shares:
`torch.cuda.max_memory_allocated` growth on CUDA, peak resident-set growth on CPU (coarser: whole pages,
and the allocator's caching). For `anna_tables` the time is also split
into hashing (normalise and bucket q and k), bucketing (number the buckets, build sums and counts) and
aggregation (each query reads its ℓ buckets).

Results: a table of times and ratios to SDPA on stdout, `bench.json` and `bench.html` (log-log plot) in
`--out`; the summary gives the crossover N with SDPA and the log-log slope of each curve.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from . import anna, attention
from .checks import check_count
from .device import cpu_generator, resolve_device, synchronize
from .lsh import LSHTables

METHODS = ("sdpa", "anna_tables", "anna_linear_memory", "reformer")
CPU_SIZES = tuple(2**p for p in range(10, 17))  # 1k … 64k
GPU_SIZES = tuple(2**p for p in range(10, 21))  # 1k … 1M


@contextmanager
def cpu_threads(n: int):
    """Run the enclosed code with torch (and so the library's numba kernels) on `n` CPU threads.

    Timing on one thread compares the algorithms rather than how well each spreads over the cores, and
    parallel CPU code waits for its slowest thread: on a machine that is busy with something else (a
    browser drawing plots) a multi-threaded call can lose whole scheduler ticks waiting for a thread that
    is not running; a one-thread call waits for no other thread.
    """
    check_count("n", n)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def reformer_available() -> bool:
    try:
        import reformer_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def _inputs(n: int, dim: int, device: torch.device, seed: int = 0):
    generator = cpu_generator(seed, "bench-inputs")
    return [torch.randn(1, 1, n, dim, generator=generator).to(device) for _ in range(3)]


def _forward(method: str, q, k, v, n_tables: int, n_hashes: int, family: str):
    """A zero-argument callable running one forward pass of `method`."""
    if method == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v)
    if method in ("anna_tables", "anna_linear_memory"):
        impl = method.removeprefix("anna_")
        return lambda: attention.anna_attention(q, k, v, n_tables, n_hashes, family, impl=impl)
    if method == "reformer":
        from reformer_pytorch import LSHAttention

        layer = LSHAttention(bucket_size=64, n_hashes=n_tables).to(q.device)
        return lambda: layer(q[0], v[0])  # Reformer shares queries and keys: qk (1, N, m)
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


def _median_seconds(fn, device, repeats: int) -> tuple[float, list[float]]:
    """The median of `repeats` calls, and all their times."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def anna_time_split(q, k, v, n_tables, n_hashes, family, device, repeats) -> dict:
    """Median seconds of ANNA's three stages (Algorithm 1, non-causal), on the library's own pieces."""
    tables = LSHTables(q.shape[-1], n_tables, n_hashes, family, device=device)
    values = v.reshape(1, -1, v.shape[-1])
    state = {}

    def hashing():
        q_hat, k_hat = (
            F.normalize(q, dim=-1).reshape(1, -1, q.shape[-1]),
            F.normalize(k, dim=-1).reshape(1, -1, k.shape[-1]),
        )
        state["ids"] = tables.bucket_ids(q_hat), tables.bucket_ids(k_hat)

    def bucketing():
        query_ids, key_ids = state["ids"]
        key_index, state["query_index"], size = anna.number_buckets(key_ids, query_ids, tables.n_buckets)
        state["tables"] = anna.build_buckets(key_index, values, size)

    def aggregation():
        num, den = anna.read_buckets(state["query_index"], *state["tables"])
        return num / den.clamp(min=1).unsqueeze(-1)

    split = {}
    for name, stage in (("hashing", hashing), ("bucketing", bucketing), ("aggregation", aggregation)):
        stage()  # warm-up, and the state the next stage needs
        split[name] = _median_seconds(stage, device, repeats)[0]
    return split


def measure(method, n, dim, n_tables, n_hashes, family, device, repeats) -> dict:
    """Time and peak extra memory of one method at one N, in this process."""
    device = resolve_device(device)
    # A small call first loads what every call shares (compiled kernels, BLAS), so the memory figure
    # below is what N itself costs.
    _forward(method, *_inputs(min(n, 256), dim, device), n_tables, n_hashes, family)()
    q, k, v = _inputs(n, dim, device)
    fn = _forward(method, q, k, v, n_tables, n_hashes, family)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _peak_rss_bytes()
    first, _ = _median_seconds(fn, device, 1)  # warm-up; its allocations set the memory figure
    peak = (
        torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else _peak_rss_bytes() - base
    )
    seconds, times = _median_seconds(fn, device, repeats)
    result = {
        "method": method,
        "n": n,
        "n_tables": n_tables,
        "seconds": seconds,
        "times": times,
        "first_call": first,
        "peak_extra_bytes": max(peak, 0),
        "device": str(device),
    }
    if method == "anna_tables":
        result["split"] = anna_time_split(q, k, v, n_tables, n_hashes, family, device, repeats)
    return result


def measure_in_child(method, n, dim, n_tables, n_hashes, family, device, repeats, timeout) -> dict:
    """`measure` in a fresh process; a crash, an out-of-memory kill or a time-out becomes an error entry."""
    arguments = json.dumps([method, n, dim, n_tables, n_hashes, family, device, repeats])
    try:
        child = subprocess.run(
            [sys.executable, "-m", "fastattn_lib.bench", "--child", arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"method": method, "n": n, "n_tables": n_tables, "error": f"took longer than {timeout} s"}
    if child.returncode != 0:
        reason = (child.stderr.strip().splitlines() or [f"exit code {child.returncode}"])[-1]
        return {"method": method, "n": n, "n_tables": n_tables, "error": reason}
    return json.loads(child.stdout.strip().splitlines()[-1])


def loglog_slope(ns, seconds) -> float:
    """Least-squares slope of log(time) against log(N): 1 is linear, 2 quadratic."""
    x, y = [math.log(n) for n in ns], [math.log(s) for s in seconds]
    mean_x, mean_y = statistics.fmean(x), statistics.fmean(y)
    return sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y, strict=True)) / sum(
        (a - mean_x) ** 2 for a in x
    )


def summarize(results: list[dict]) -> dict:
    """Ratios to SDPA, the crossover N, log-log slopes (N ≥ 4096) and the 4k→16k growth of each method."""
    timed = [r for r in results if "seconds" in r and r.get("sweep") == "n"]
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


def format_table(results: list[dict]) -> str:
    sweep = [r for r in results if r.get("sweep") == "n"]
    methods = [m for m in METHODS if any(r["method"] == m for r in sweep)]
    ns = sorted({r["n"] for r in sweep})
    cell = {(r["method"], r["n"]): r for r in sweep}
    lines = [
        "| N | " + " | ".join(f"{m} ms (× vs sdpa)" for m in methods) + " |",
        "|---:|" + "---:|" * len(methods),
    ]
    for n in ns:
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


def format_split(results: list[dict]) -> str:
    lines = [
        "| N | hashing ms | bucketing ms | aggregation ms | total / hashing |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in sorted((r for r in results if "split" in r and r.get("sweep") == "n"), key=lambda r: r["n"]):
        split = r["split"]
        lines.append(
            f"| {r['n']} | {1000 * split['hashing']:.1f} | {1000 * split['bucketing']:.1f} | "
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


def figure(results: list[dict]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for method in METHODS:
        rows = sorted(
            (r["n"], r["seconds"])
            for r in results
            if r["method"] == method and "seconds" in r and r.get("sweep") == "n"
        )
        if rows:
            fig.add_scatter(
                x=[n for n, _ in rows], y=[1000 * s for _, s in rows], name=method, mode="lines+markers"
            )
    device = next((r["device"] for r in results if "device" in r), "?")
    fig.update_layout(
        title=f"forward time vs sequence length ({device})",
        xaxis={"title": "N (tokens)", "type": "log"},
        yaxis={"title": "time (ms)", "type": "log"},
        width=720,
        height=480,
    )
    return fig


def run(
    sizes, methods, dim, n_tables, n_hashes, family, device, repeats, memory_tables, timeout, progress=True
):
    """The whole benchmark: the N sweep for every method, then linear-memory ANNA's peak memory over ℓ."""
    from tqdm.auto import tqdm

    jobs = [("n", m, n, n_tables) for n in sizes for m in methods]
    jobs += [("tables", "anna_linear_memory", max(sizes), t) for t in memory_tables]
    jobs += [("tables", "anna_tables", max(sizes), t) for t in memory_tables]
    results = []
    for sweep, method, n, tables in tqdm(jobs, desc="bench", disable=not progress):
        result = measure_in_child(method, n, dim, tables, n_hashes, family, device, repeats, timeout)
        results.append({**result, "sweep": sweep})
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastattn_lib.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="comma-separated N (default: 1k…64k on CPU, 1k…1M on CUDA)",
    )
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    parser.add_argument("--dim", type=int, default=64, help="m, the width of q, k and v")
    parser.add_argument("--n-tables", type=int, default=8, help="ℓ (Reformer's n_hashes)")
    parser.add_argument("--n-hashes", type=int, default=1, help="z")
    parser.add_argument("--family", default="cross_polytope")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--memory-tables",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[4, 8, 16, 32],
        help="ℓ values for the peak-memory sweep at the largest N",
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per (method, N)")
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*json.loads(args.child))))
        return 0

    device = resolve_device(args.device)
    sizes = args.sizes or list(GPU_SIZES if device.type == "cuda" else CPU_SIZES)
    methods = [m for m in args.methods if m != "reformer" or reformer_available()]
    if "reformer" in args.methods and "reformer" not in methods:
        print(
            "reformer-pytorch is not installed (pip install 'fastattn[bench]'): skipping the reformer column"
        )
    results = run(
        sizes,
        methods,
        args.dim,
        args.n_tables,
        args.n_hashes,
        args.family,
        str(device),
        args.repeats,
        args.memory_tables,
        args.timeout,
    )
    summary = summarize(results)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dim": args.dim,
        "n_tables": args.n_tables,
        "n_hashes": args.n_hashes,
        "family": args.family,
    }
    (args.out / "bench.json").write_text(
        json.dumps({"settings": settings, "results": results, "summary": summary}, indent=1)
    )
    figure(results).write_html(args.out / "bench.html", include_plotlyjs=True)
    print(f"\n{settings}\n\n{format_table(results)}\n\nANNA (tables) time split\n{format_split(results)}")
    print(f"\npeak extra memory at N = {max(sizes)}\n{format_memory(results)}\n")
    for method, entry in sorted(summary.items()):
        slope = f"{entry['slope']:.2f}" if entry["slope"] is not None else "—"
        growth = f", 4k→16k ×{entry['growth_4k_to_16k']:.2f}" if "growth_4k_to_16k" in entry else ""
        crossover = entry["crossover_n"]
        print(f"{method}: log-log slope (N ≥ 4096) {slope}{growth}, faster than SDPA from N = {crossover}")
    print(f"\nwritten: {args.out / 'bench.json'}, {args.out / 'bench.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
