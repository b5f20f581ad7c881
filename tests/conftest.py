from pathlib import Path

import pytest
import torch

from fastattn_lib import training
from fastattn_lib.notebooks import NotebookFailed, run

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))

# A Match2 run short enough for tests: every phase, a few steps each.
TINY = {"steps": 20, "kernel_steps": 10, "finetune_steps": 10, "eval_every": 10, "n_train": 256}


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA; torch.cuda.is_available() is False on this machine")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_run():
    """One tiny training run shared by the recipe and checkpoint tests."""
    return training.train(training.TrainConfig(task="match2", **TINY), device="cpu", progress=False)


@pytest.fixture(scope="session")
def smoke_notebooks(tmp_path_factory):
    """Execute a notebook with SMOKE=True (papermill) once per session, for the notebook and book tests:
    `smoke_notebooks(path)` returns the executed copy or raises the NotebookFailed naming the failing cell."""
    out, results = tmp_path_factory.mktemp("executed"), {}

    def executed(path: Path) -> Path:
        if path.name not in results:
            try:
                results[path.name] = run(path, out, parameters={"SMOKE": True}, timeout=600)
            except NotebookFailed as failure:
                results[path.name] = failure
        if isinstance(results[path.name], NotebookFailed):
            raise results[path.name]
        return results[path.name]

    return executed
