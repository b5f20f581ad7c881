"""`make gpu-check`: the CUDA checks, in minutes, on an offline GPU machine whose `python3` already has torch
(CUDA), numpy, numba, pytest and tqdm. Nothing is installed or downloaded; the package runs from the checkout.

1. the `gpu`-marked tests (CPU and CUDA agree within tolerance);
2. every panel's pure update function on CUDA (the panels import plotly and ipywidgets: pure-Python wheels
   that `make gpu-site` puts in build/gpu-site on a machine with a network, to be carried along);
3. the benchmark on CUDA: non-causal one head up to N = 2²⁰, causal and 8 heads to smaller N, SDPA as the
   baseline in the same run, synchronised timing;

then writes data/benchmarks/gpu.json and the README's GPU table (between its gpu-bench markers).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

try:
    import torch
except ImportError:  # main() says so: the GPU machine's python3 is expected to bring its own torch
    torch = None

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "benchmarks"
BEGIN, END = "<!-- gpu-bench:begin -->", "<!-- gpu-bench:end -->"
SWEEPS = [  # (sections, largest N): what fits the 8-minute budget on an H100/H200
    ("n", 2**20),
    ("causal", 2**18),
    ("heads,heads_causal", 2**16),
]


def gpu_tests() -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"], cwd=ROOT)
    return {"exit_code": done.returncode, "seconds": time.perf_counter() - started}


def panel_updates() -> dict:
    """Seconds of each panel's pure update function on CUDA, first call and again (or why they could not
    run). The policy panel's first call decodes every W and every budget; later ones look up."""
    try:
        from .panels import anna, lsh, mpc, nats, training
    except ImportError as err:
        return {"skipped": f"{err}; run `make gpu-site` where there is a network and carry build/gpu-site"}
    calls = {
        "lsh_update": lambda: lsh.lsh_update(8, 2, "cross_polytope", 64, "cuda"),
        "anna_update": lambda: anna.anna_update(10.0, 8, 1, "cross_polytope", 2048, False, "cuda"),
        "khop_update": lambda: mpc.khop_update(8, 64, 32, 2, 0, "cuda"),
        "distilled_update": lambda: training.distilled_update(10.0, 8, 1, device="cuda"),
        "policy_update": lambda: nats.policy_update(2.0, 8, 16, device="cuda"),
    }
    timings = {}
    for name, call in calls.items():
        timings[name] = {}
        for attempt in ("first", "again"):
            torch.cuda.synchronize()
            started = time.perf_counter()
            call()
            torch.cuda.synchronize()
            timings[name][attempt] = time.perf_counter() - started
    return timings


def benchmark(out: Path) -> dict:
    from .bench import report, run

    merged = {"results": []}
    for sections, largest in SWEEPS:
        sizes = ",".join(str(2**p) for p in range(10, largest.bit_length()))
        folder = out / sections.replace(",", "+")
        run.main(["--device", "cuda", "--sections", sections, "--sizes", sizes, "--heads-max-n", str(largest),
                  "--methods", "sdpa,anna_tables,anna_hadamard", "--out", str(folder)])  # fmt: skip
        part = json.loads((folder / "bench.json").read_text())
        merged["results"] += part["results"]
        merged["settings"] = part["settings"]
    merged["summary"] = {sweep: report.summarize(merged["results"], sweep) for sweep in report.SWEEPS}
    return merged


def write_readme_table(markdown: str, device: str, readme: Path = ROOT / "README.md") -> None:
    """Replace the README's block between the gpu-bench markers with the table."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} … {END} block to write the GPU table into")
    head, rest = text.split(BEGIN, 1)
    block = f"{BEGIN}\n`make gpu-check` on {device}:\n\n{markdown}\n{END}"
    readme.write_text(head + block + rest.split(END, 1)[1])


def main() -> int:
    if torch is None:
        print(
            f"gpu-check: {sys.executable} has no torch; run it with the GPU machine's python3",
            file=sys.stderr,
        )
        return 2
    if not torch.cuda.is_available():
        print(
            "gpu-check: torch sees no CUDA device here; run it on a machine with an NVIDIA GPU",
            file=sys.stderr,
        )
        return 2
    device = torch.cuda.get_device_name()
    record = {"device": device, "torch": torch.__version__, "tests": gpu_tests(), "panels": panel_updates()}
    record["bench"] = benchmark(ROOT / "build" / "gpu-bench")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gpu.json").write_text(json.dumps(record, indent=1) + "\n")
    from .bench import report

    write_readme_table(report.markdown(record["bench"]), device)
    print(json.dumps({k: record[k] for k in ("device", "tests", "panels")}, indent=1))
    return 0 if record["tests"]["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
