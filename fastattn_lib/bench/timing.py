"""Timing one forward pass of an attention method, in this process or in a fresh child process.

Methods, on q, k, v of shape [1, H, N, m] (one batch entry, H heads; causal or not):

* `sdpa`: torch's fused `scaled_dot_product_attention` (the flash kernel on CPU and GPU), the baseline;
* `anna_tables`, `anna_linear_memory`: `anna.anna_attention`, Algorithms 1 and 2, dense rotation;
* `anna_hadamard`: Algorithm 1 with the Hadamard (FALCONN-style) rotation;
* `reformer`: reformer-pytorch's `LSHAttention` with Reformer's `n_hashes` = our ℓ and buckets of 64
  (the optional `bench` extra; one head, non-causal).

A timing is the median of `repeats` calls after a warm-up call (CUDA synchronised); the benchmark's runs
take more calls (up to 50) while they take under `BUDGET_SECONDS` in all. Peak extra memory is what the
first call at N adds after a call at a small N has loaded what every call shares:
`torch.cuda.max_memory_allocated` growth on CUDA, peak resident-set growth on CPU (whole pages, and the
allocator's caching). For the ANNA methods the time is also split into hashing (bucket ids of q and k),
bucketing (number the buckets, build sums and counts; for causal ANNA the running sums) and aggregation
(each query reads its ℓ buckets).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .. import anna
from ..checks import check_choice, check_count
from ..device import cpu_generator, resolve_device, synchronize
from ..kernels import causal_bucket_sums

METHODS = ("sdpa", "anna_tables", "anna_hadamard", "anna_linear_memory", "reformer")
METHOD_LABELS = {  # what a reader sees in a legend
    "sdpa": "softmax (torch's fused SDPA)",
    "anna_tables": "ANNA, Algorithm 1",
    "anna_hadamard": "ANNA, Algorithm 1, Hadamard rotation",
    "anna_linear_memory": "ANNA, one table at a time",
    "reformer": "Reformer's LSH attention",
}
BUDGET_SECONDS = 1.0  # a timing takes more than `repeats` calls while they fit in this (see median_seconds)
ANNA_METHODS = {"anna_tables": ("tables", "dense"), "anna_hadamard": ("tables", "hadamard"),
                "anna_linear_memory": ("linear_memory", "dense")}  # fmt: skip


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


def inputs(n: int, dim: int, device: torch.device, heads: int = 1, seed: int = 0):
    """q, k, v of shape [1, heads, n, dim], seeded."""
    generator = cpu_generator(seed, "bench-inputs")
    return [torch.randn(1, heads, n, dim, generator=generator).to(device) for _ in range(3)]


def forward(method: str, q, k, v, n_tables: int, n_hashes: int, family: str, causal: bool = False):
    """A zero-argument callable running one forward pass of `method` (each head hashes with its own
    functions when there are several)."""
    check_choice("method", method, METHODS)
    if method == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if method == "reformer":
        if causal or q.shape[1] != 1:
            raise ValueError("method: the reformer column is measured for one head, non-causal")
        from reformer_pytorch import LSHAttention

        layer = LSHAttention(bucket_size=64, n_hashes=n_tables).to(q.device)
        return lambda: layer(q[0], v[0])  # Reformer shares queries and keys: qk (1, N, m)
    impl, rotation = ANNA_METHODS[method]
    per_head = q.shape[1] > 1
    return lambda: anna.anna_attention(
        q, k, v, n_tables, n_hashes, family, causal=causal, impl=impl, per_head=per_head, rotation=rotation
    )


def median_seconds(
    fn, device, repeats: int, budget: float = 0.0, most: int = 50
) -> tuple[float, list[float]]:
    """The median of at least `repeats` calls, more (up to `most`) while they fit in `budget` seconds, and
    all their times. The budget gives a fast call many samples, so that one slow moment of a shared
    machine moves its median little, while a slow call is still timed `repeats` times only."""
    times = []
    while len(times) < repeats or (sum(times) < budget and len(times) < most):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def anna_time_split(
    q, k, v, n_tables, n_hashes, family, device, repeats, causal=False, rotation="dense", budget=0.0
):
    """Median seconds of Algorithm 1's three stages on the library's own pieces."""
    tables = anna.hash_tables(q, n_tables, n_hashes, family, 0, q.shape[1] > 1, rotation)
    batch = q.shape[:-2].numel()
    values = v.reshape(batch, -1, v.shape[-1])
    state = {}

    def hashing():
        ids = [tables.bucket_ids(x).reshape(n_tables, batch, -1) for x in (q, k)]
        state["ids"] = ids

    def bucketing():
        query_ids, key_ids = state["ids"]
        key_index, state["query_index"], size = anna.number_buckets(key_ids, query_ids, tables.n_buckets)
        if causal:  # the running sums read as they build: bucketing and aggregation are one pass
            state["read"] = causal_bucket_sums(key_index, state["query_index"], values, size)
        else:
            state["tables"] = anna.build_buckets(key_index, values, size)

    def aggregation():
        num, den = state["read"] if causal else anna.read_buckets(state["query_index"], *state["tables"])
        return num / den.clamp(min=1).unsqueeze(-1)

    split = {}
    for name, stage in (("hashing", hashing), ("bucketing", bucketing), ("aggregation", aggregation)):
        stage()  # warm-up, and the state the next stage needs
        split[name] = median_seconds(stage, device, repeats, budget)[0]
    return split


def measure(
    method, n, dim, n_tables, n_hashes, family, device, repeats, causal=False, heads=1, budget=0.0
) -> dict:
    """Time and peak extra memory of one method at one N, in this process; `budget`: see median_seconds."""
    device = resolve_device(device)
    # A small call first loads what every call shares (compiled kernels, BLAS), so the memory figure
    # below is what N itself costs.
    small = inputs(min(n, 256), dim, device, heads)
    forward(method, *small, n_tables, n_hashes, family, causal)()
    q, k, v = inputs(n, dim, device, heads)
    fn = forward(method, q, k, v, n_tables, n_hashes, family, causal)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _peak_rss_bytes()
    first, _ = median_seconds(fn, device, 1)  # warm-up; its allocations set the memory figure
    peak = (
        torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else _peak_rss_bytes() - base
    )
    seconds, times = median_seconds(fn, device, repeats, budget)
    result = {
        "method": method,
        "n": n,
        "n_tables": n_tables,
        "heads": heads,
        "causal": causal,
        "seconds": seconds,
        "times": times,
        "first_call": first,
        "peak_extra_bytes": max(peak, 0),
        "device": str(device),
    }
    if method in ("anna_tables", "anna_hadamard"):
        rotation = ANNA_METHODS[method][1]
        split = anna_time_split(
            q, k, v, n_tables, n_hashes, family, device, repeats, causal, rotation, budget
        )
        result["split"] = split
    return result


def measure_in_child(
    method, n, dim, n_tables, n_hashes, family, device, repeats, timeout, causal=False, heads=1
):
    """`measure` in a fresh process, with a time budget of BUDGET_SECONDS per timing; a crash, an
    out-of-memory kill or a time-out becomes an error entry."""
    arguments = [method, n, dim, n_tables, n_hashes, family, device, repeats, causal, heads, BUDGET_SECONDS]
    arguments = json.dumps(arguments)
    entry = {"method": method, "n": n, "n_tables": n_tables, "heads": heads, "causal": causal}
    try:
        child = subprocess.run(
            [sys.executable, "-m", "fastattn_lib.bench", "--child", arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {**entry, "error": f"took longer than {timeout} s"}
    if child.returncode != 0:
        reason = (child.stderr.strip().splitlines() or [f"exit code {child.returncode}"])[-1]
        return {**entry, "error": reason}
    return json.loads(child.stdout.strip().splitlines()[-1])
