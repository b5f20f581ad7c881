"""The shipped checkpoints: both stages' weights (the softmax surrogate and the fine-tuned model), the
configurations and the training history, stored as tensors, numbers and strings only and verified against
data/manifest.json before they are read."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from .. import data
from ..device import resolve_device
from ..models import ModelConfig, TinyTransformer
from .recipe import TASK_DEFAULTS, History, TrainConfig, TrainResult, check_task, train

STAGES = ("surrogate", "distilled")


def checkpoint_name(task: str, beta: float) -> str:
    check_task(task)
    return f"{task}_beta{beta:g}.pt"


def save_checkpoint(result: TrainResult, path: Path) -> None:
    """Both stages' weights, the configurations and the history, as tensors, numbers and strings only,
    so `torch.load(weights_only=True)` reads it back without unpickling any object."""
    torch.save(
        {
            "model_config": result.model.config_dict(),
            "train_config": {**asdict(result.config), "n_tables": list(result.config.n_tables)},
            "history": asdict(result.history),
            "surrogate": {name: tensor.cpu() for name, tensor in result.surrogate_state.items()},
            "distilled": {name: tensor.detach().cpu() for name, tensor in result.model.state_dict().items()},
        },
        path,
    )


def load_checkpoint(path: Path, stage: str = "distilled", device="auto") -> tuple[TinyTransformer, dict]:
    """The model of one stage (running softmax, eval) and the rest of the checkpoint: configs, history
    and the other stage's weights."""
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {STAGES}, got {stage!r}")
    contents = torch.load(path, map_location="cpu", weights_only=True)
    model = TinyTransformer(ModelConfig(**contents["model_config"]))
    model.load_state_dict(contents[stage])
    metadata = {k: v for k, v in contents.items() if k != stage}
    return model.eval().to(resolve_device(device)), metadata


def load_pretrained(
    task: str, beta: float = 10.0, stage: str = "distilled", device="auto", data_dir: Path = data.DATA_DIR
) -> TinyTransformer:
    """A shipped model for `task` trained at temperature β, hash-verified against data/manifest.json.

    `stage="distilled"` (after the collision-kernel and ANNA fine-tuning) or `"surrogate"` (the softmax
    model as trained, the starting point of weight copying). Both run softmax; `model.with_attention(
    Anna(n_tables=..., n_hashes=..., seed=...))` runs the same weights with ANNA.
    """
    model, _ = load_checkpoint(data.verified_path(checkpoint_name(task, beta), data_dir), stage, device)
    return model


def load_run(task: str, beta: float = 10.0, device="auto", data_dir: Path = data.DATA_DIR) -> TrainResult:
    """A shipped checkpoint as the `TrainResult` that `train` would have returned."""
    path = data.verified_path(checkpoint_name(task, beta), data_dir)
    model, metadata = load_checkpoint(path, "distilled", device)
    device = model.classifier.weight.device
    surrogate_state = {name: tensor.to(device) for name, tensor in metadata["surrogate"].items()}
    return TrainResult(
        model, surrogate_state, History(**metadata["history"]), TrainConfig(**metadata["train_config"])
    )


def get_run(task: str, beta: float, retrain: bool = False, device="auto", progress=True, **overrides):
    """The shipped run for (task, β), or a fresh one when `retrain` (overrides shorten it: SMOKE runs)."""
    if not retrain:
        return load_run(task, beta, device)
    return train(TrainConfig(task=task, beta=beta, **{**TASK_DEFAULTS[task], **overrides}), device, progress)
