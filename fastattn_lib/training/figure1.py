"""Our version of the experiment behind the ANNA paper's Figure 1 (test error of ANNA over a grid of ℓ and
z): with our recipe, for each β, after weight copying (zero-shot) and after our fine-tuning into ANNA, both
ours; `reproduce` trains, evaluates and ships the results. A summary of the paper says it averages 10
runs per setting; our induction-heads grid uses one hash draw on 64 test sequences (`GRID_DRAWS`,
`GRID_TEST_SAMPLES`)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from .. import data
from ..models import TinyTransformer
from .checkpoints import checkpoint_name, load_run, save_checkpoint
from .recipe import (
    TASK_DEFAULTS,
    TASKS,
    TrainConfig,
    TrainResult,
    anna_error,
    check_task,
    error_rate,
    kernel_attention,
    train,
)

# The ℓ and z ranges the ANNA paper reports for its Figure 1; for induction heads the corners and centre
# of its ℓ₁ × ℓ₂ range.
GRIDS = {
    "match2": {"n_tables": [[ell] for ell in range(1, 17)], "n_hashes": list(range(1, 7))},
    "induction": {
        "n_tables": [[first, second] for first in (32, 64, 96) for second in (4, 16, 32)],
        "n_hashes": [1, 2, 3, 4],
    },
}
# Hash draws per grid cell, and test sequences used by the grid. Induction heads use 1 draw on the first 64
# test sequences: one ANNA evaluation of all 256 at ℓ₁ = 96 takes 10-25 s on 2 CPU cores (hashing 25 600
# tokens into 96 + 32 cross-polytope tables), and the grid has 36 cells, twice.
GRID_DRAWS = {"match2": 10, "induction": 1}
GRID_TEST_SAMPLES = {"match2": 256, "induction": 64}
REPRODUCE = "python -m fastattn_lib.training reproduce --task {task}"
REPRODUCE_BETAS = {"match2": (0.1, 1.0, 10.0), "induction": (10.0,)}


def error_grid(
    model: TinyTransformer, task: str, n_draws: int = 10, progress: bool = True
) -> list[list[float]]:
    """ANNA test error for every (ℓ per layer, z) of the task's grid: rows ℓ, columns z."""
    x, y = data.load_test_set(TASKS[task]["test_set"])
    x, y = x[: GRID_TEST_SAMPLES[task]], y[: GRID_TEST_SAMPLES[task]]
    grid = GRIDS[task]
    cells = [(ells, z) for ells in grid["n_tables"] for z in grid["n_hashes"]]
    errors = [
        anna_error(model, x, y, ells, z, n_draws=n_draws, impl=TASKS[task]["impl"])
        for ells, z in tqdm(cells, desc=f"{task} grid", disable=not progress)
    ]
    width = len(grid["n_hashes"])
    return [errors[row * width : (row + 1) * width] for row in range(len(grid["n_tables"]))]


def experiment_result(result: TrainResult, n_draws: int = 10, progress: bool = True) -> dict:
    """Everything our version of the paper's figure needs for one β: the surrogate's error, and the ANNA
    error grid with the surrogate's weights copied (zero-shot) and after fine-tuning ("distilled")."""
    task = result.config.task
    x, y = data.load_test_set(TASKS[task]["test_set"])
    distilled, surrogate = result.model, result.surrogate()
    started = time.perf_counter()
    record = {
        "beta": result.config.beta,
        "softmax_error": error_rate(surrogate, x, y),
        "kernel_error": error_rate(distilled.with_attention(kernel_attention(result.config)), x, y),
        "zero_shot_grid": error_grid(surrogate, task, n_draws, progress),
        "distilled_grid": error_grid(distilled, task, n_draws, progress),
        "train_seconds": result.history.seconds,
    }
    record["evaluation_seconds"] = time.perf_counter() - started
    return record


def reproduce(
    task: str,
    betas=(0.1, 1.0, 10.0),
    out_dir: Path = data.DATA_DIR,
    device="auto",
    progress: bool = True,
    n_draws: int | None = None,
    retrain: bool = True,
    **overrides,
) -> dict:
    """Train one model per β, write its checkpoint and the results table into `out_dir`, and list them in
    the manifest there. `overrides` change `TrainConfig` fields (shorter runs for tests); `retrain=False`
    only re-evaluates the checkpoints already in `out_dir`."""
    out_dir = Path(out_dir)
    check_task(task)
    n_draws = GRID_DRAWS[task] if n_draws is None else n_draws
    command = REPRODUCE.format(task=task)
    results = {
        "task": task,
        "command": command,
        "grid": GRIDS[task],
        "n_draws": n_draws,
        "grid_test_samples": GRID_TEST_SAMPLES[task],
        "runs": [],
    }
    for beta in betas:
        if retrain:
            config = TrainConfig(task=task, beta=beta, **{**TASK_DEFAULTS[task], **overrides})
            result = train(config, device, progress)
            path = out_dir / checkpoint_name(task, beta)
            save_checkpoint(result, path)
            data.record_file(path, "checkpoint", command, train_config=asdict(config))
        else:
            result = load_run(task, beta, device, out_dir)
            config = result.config
        results["runs"].append(
            {**experiment_result(result, n_draws, progress), "train_config": asdict(config)}
        )
    path = out_dir / f"{task}_results.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    data.record_file(path, "results", command)
    return results


def load_results(task: str, data_dir: Path = data.DATA_DIR) -> dict:
    """The shipped results table of `reproduce(task)`, hash-verified."""
    check_task(task)
    return json.loads(data.verified_path(f"{task}_results.json", data_dir).read_text())
