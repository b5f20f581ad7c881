"""The benchmark run: sweeps over N in child processes, the memory sweep over ℓ, the extra sections, the
JSON and the printed tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..device import resolve_device
from . import extras, report
from .timing import METHODS, measure, measure_in_child, reformer_available

CPU_SIZES = tuple(2**p for p in range(10, 17))  # 1k … 64k
GPU_SIZES = tuple(2**p for p in range(10, 21))  # 1k … 1M
SECTIONS = ("n", "causal", "heads", "heads_causal", "tables", "training", "panels", "collisions")
SWEEP_SETTINGS = {"n": (False, 1), "causal": (True, 1), "heads": (False, 8), "heads_causal": (True, 8)}


def jobs(sections, sizes, methods, n_tables, memory_tables, heads_max_n) -> list[tuple]:
    """(sweep, method, N, ℓ, causal, heads) for every timing the chosen sections need."""
    planned = []
    for sweep, (causal, heads) in SWEEP_SETTINGS.items():
        if sweep not in sections:
            continue
        shown = [m for m in methods if m != "reformer" or sweep == "n"]  # Reformer: one head, non-causal
        ns = [n for n in sizes if heads == 1 or n <= heads_max_n]
        planned += [(sweep, m, n, n_tables, causal, heads) for n in ns for m in shown]
    if "tables" in sections:
        for method in ("anna_linear_memory", "anna_tables"):
            planned += [("tables", method, max(sizes), t, False, 1) for t in memory_tables]
    return planned


def run(args, device, progress=True) -> dict:
    from tqdm.auto import tqdm

    sizes = args.sizes or list(GPU_SIZES if device.type == "cuda" else CPU_SIZES)
    methods = [m for m in args.methods if m != "reformer" or reformer_available()]
    if "reformer" in args.methods and "reformer" not in methods:
        print("reformer-pytorch is not installed (pip install 'fastattn[bench]'): no reformer column")
    planned = jobs(args.sections, sizes, methods, args.n_tables, args.memory_tables, args.heads_max_n)
    results = []
    for sweep, method, n, tables, causal, heads in tqdm(planned, desc="bench", disable=not progress):
        common = (args.dim, tables, args.n_hashes, args.family, str(device), args.repeats, args.timeout)
        results.append({**measure_in_child(method, n, *common, causal, heads), "sweep": sweep})
    out = {"results": results}
    out["summary"] = {sweep: report.summarize(results, sweep) for sweep in SWEEP_SETTINGS}
    if "training" in args.sections:
        out["training_step"] = extras.training_step_seconds(device)
    if "panels" in args.sections:
        out["panels"] = extras.panel_update_seconds(device)
    if "collisions" in args.sections:
        out["collisions"] = extras.collision_check(device=device)
    return out


def parser() -> argparse.ArgumentParser:
    from . import __doc__ as description

    p = argparse.ArgumentParser(prog="python -m fastattn_lib.bench", description=description.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="comma-separated N (default: 1k…64k on CPU, 1k…1M on CUDA)")  # fmt: skip
    p.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    p.add_argument("--sections", type=lambda s: s.split(","), default=list(SECTIONS), help=f"of {SECTIONS}")
    p.add_argument("--heads-max-n", type=int, default=16384, help="largest N of the 8-head sweeps")
    p.add_argument("--dim", type=int, default=64, help="m, the width of q, k and v")
    p.add_argument("--n-tables", type=int, default=8, help="ℓ (Reformer's n_hashes)")
    p.add_argument("--n-hashes", type=int, default=1, help="z")
    p.add_argument("--family", default="cross_polytope")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory-tables", type=lambda s: [int(x) for x in s.split(",")], default=[4, 8, 16, 32],
                   help="ℓ values for the peak-memory sweep at the largest N")  # fmt: skip
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per (method, N)")
    p.add_argument("--out", type=Path, default=Path("build/bench"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.child:
        print(json.dumps(measure(*json.loads(args.child))))
        return 0
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--sections: expected some of {SECTIONS}, got {sorted(unknown)}")
    device = resolve_device(args.device)
    out = run(args, device)
    out["settings"] = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **{name: getattr(args, name) for name in ("dim", "n_tables", "n_hashes", "family", "repeats")},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(out, indent=1))
    report.figure(out["results"]).write_html(args.out / "bench.html", include_plotlyjs=True)
    print(f"\n{out['settings']}\n\n{report.markdown(out)}\n")
    for sweep, summary in out["summary"].items():
        for method, entry in sorted(summary.items()):
            slope = f"{entry['slope']:.2f}" if entry["slope"] is not None else "—"
            growth = f", 4k→16k ×{entry['growth_4k_to_16k']:.2f}" if "growth_4k_to_16k" in entry else ""
            print(f"{sweep} {method}: slope (N ≥ 4096) {slope}{growth}, faster than SDPA from N = "
                  f"{entry['crossover_n']}")  # fmt: skip
    print(f"\nwritten: {args.out / 'bench.json'}, {args.out / 'bench.html'}")
    return 0
