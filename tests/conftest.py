import pytest
import torch

from fastattn_lib import training

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
