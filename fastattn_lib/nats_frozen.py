"""NAtS on a frozen backbone: the records-and-queries experiment with only the role scorers trained.

The fine-tuning regime of `nats_experiment` lets every weight move while NAtS learns its roles, but the
baselines (StreamingLLM, H2O) run on the dense model: NAtS gets a retrained network, the baselines do not.
Here the backbone is the shipped dense model, frozen, as the official code fine-tunes large language
models: only the scorers train and the loss is distillation:

    loss = ‖h_NAtS − h_dense‖² (mean over tokens and features) + λ·sparsity

(the official code averages over the label tokens only; ours, over every token)

with h the final hidden states (the output layer's input) of the NAtS-masked model and of the same weights
with full attention (the teacher, run without gradient), and the package's normalised sparsity term
(`nats.sparsity_loss`). NAtS, StreamingLLM and H2O are then decoded with eviction on the *same* weights.
Roles can be given per chunk of C tokens (`nats.NatsAttention(W, chunk=C)`).

`python -m fastattn_lib.nats_experiment reproduce` (its default `--regime frozen`) trains the scorers for
each setting, writes the scorer checkpoints (a few KB each: the backbone is `nats_dense.pt`) and the table.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import data, nats
from . import nats_experiment as experiment
from .checks import check_count, check_window
from .device import cpu_generator, resolve_device
from .models import TinyTransformer

REPRODUCE = "python -m fastattn_lib.nats_experiment reproduce --regime frozen"
RESULTS = "nats_frozen_results.json"
# (λ, C) of the shipped scorers: a λ sweep with per-token roles, and chunks of 4 and 8 at one λ
SETTINGS = ((0.02, 1), (0.1, 1), (0.5, 1), (0.1, 4), (0.1, 8))
BUDGETS = (8, 12, 16, 24, 32, 48)


@dataclass
class FrozenTrainConfig:
    """Scorer training on the frozen dense model: AdamW on the scorers only, distillation plus λ·sparsity."""

    steps: int = 80
    sparsity_weight: float = 0.1  # λ
    chunk: int = 1  # C
    batch_size: int = 32
    scorer_lr: float = 3e-2
    seed: int = 0
    eval_every: int = 40
    window: int = experiment.WINDOW

    def __post_init__(self):
        check_count("steps", self.steps, minimum=0)
        for name in ("batch_size", "eval_every", "chunk"):
            check_count(name, getattr(self, name))
        nats.sparsity_loss(torch.zeros(1, 3), self.sparsity_weight)  # validates λ
        check_window(self.window)

    def attention(self) -> nats.NatsAttention:
        return nats.NatsAttention(self.window, self.chunk)


@dataclass
class ScorerHistory:
    loss: list[float] = field(default_factory=list)  # distillation + λ·sparsity, per step
    distillation: list[float] = field(default_factory=list)  # the mean squared difference alone
    eval_steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)  # held-out answers, masked forward pass
    cache_share: list[float] = field(default_factory=list)  # mask share held by GLOBAL/LOCAL tokens
    seconds: float = 0.0


def scorer_parameters(model: TinyTransformer) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if ".scorer." in name}


def nats_twin(dense: TinyTransformer, attention: nats.NatsAttention) -> TinyTransformer:
    """A new model with a copy of the dense weights (scorers included) running `attention`; only its
    scorers can train, the dense model is left unchanged."""
    model = TinyTransformer(dense.config, attention=attention).to(dense.classifier.weight.device)
    model.load_state_dict(dense.state_dict())
    scorers = set(scorer_parameters(model).values())
    for parameter in model.parameters():
        parameter.requires_grad_(parameter in scorers)
    return model


def train_scorers(dense: TinyTransformer, config: FrozenTrainConfig, progress=True):
    """Train the role scorers of a NAtS twin of `dense` (frozen) to reproduce its final hidden states.
    Returns (the NAtS model in eval mode, ScorerHistory)."""
    device = dense.classifier.weight.device
    torch.manual_seed(config.seed)
    dense.eval()
    model = nats_twin(dense, config.attention())
    optimizer = torch.optim.AdamW(scorer_parameters(model).values(), lr=config.scorer_lr, weight_decay=0.0)
    tokens_all, answers_all = experiment.records_and_queries(20_000, seed=config.seed + 2)
    test_tokens, test_answers = (t.to(device) for t in experiment.held_out(256))
    order = cpu_generator(config.seed, "nats-frozen-batches")
    history = ScorerHistory()
    started = time.perf_counter()
    label = f"scorers λ={config.sparsity_weight:g} C={config.chunk}"
    for step in tqdm(range(1, config.steps + 1), desc=label, disable=not progress):
        model.train()
        tokens = tokens_all[torch.randint(len(tokens_all), (config.batch_size,), generator=order)].to(device)
        with torch.no_grad():
            target = dense.hidden_states(tokens)[0]
        hidden, roles = model.hidden_states(tokens)
        distillation = F.mse_loss(hidden, target)
        sparsity = [nats.sparsity_loss(r, config.sparsity_weight, config.chunk) for r in roles]
        loss = distillation + sum(sparsity) / len(sparsity)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.loss.append(loss.item())
        history.distillation.append(distillation.item())
        if step % config.eval_every == 0 or step == config.steps:
            model.eval()
            with torch.no_grad():
                logits, roles = model.run(test_tokens)
            history.eval_steps.append(step)
            history.accuracy.append(experiment.answer_accuracy(logits, test_tokens, test_answers))
            share = sum(nats.sparsity_loss(r, 1.0, config.chunk) for r in roles) / len(roles)
            history.cache_share.append(float(share))
    history.seconds = time.perf_counter() - started
    return model.eval(), history


# ---- scorer checkpoints -----------------------------------------------------------------------------------


def checkpoint_name(sparsity_weight: float, chunk: int) -> str:
    return f"nats_frozen_lambda{sparsity_weight:g}_chunk{chunk}.pt"


def save_scorers(model, history: ScorerHistory, config: FrozenTrainConfig, path: Path, backbone_sha256: str):
    """The scorer weights only (the backbone is the dense checkpoint, named by its sha256), the training
    settings and history: tensors, numbers and strings, read back with `torch.load(weights_only=True)`."""
    torch.save(
        {
            "train_config": asdict(config),
            "history": asdict(history),
            "backbone_sha256": backbone_sha256,
            "scorers": {name: p.detach().cpu() for name, p in scorer_parameters(model).items()},
        },
        path,
    )


def load_scorers(sparsity_weight: float, chunk: int = 1, device="auto", data_dir: Path = data.DATA_DIR):
    """The shipped dense model with the scorers trained on it at (λ, C), running `NatsAttention(W, C)`;
    both files hash-verified, the scorers checked to belong to this dense checkpoint.
    Returns (model in eval mode, ScorerHistory)."""
    path = data.verified_path(checkpoint_name(sparsity_weight, chunk), data_dir)
    contents = torch.load(path, map_location="cpu", weights_only=True)
    backbone = data.read_manifest(data_dir)["files"][experiment.checkpoint_name()]["sha256"]
    if contents["backbone_sha256"] != backbone:
        raise data.DataError(f"{path.name} belongs to another dense model; regenerate it with `{REPRODUCE}`")
    dense, _ = experiment.load_model(None, "cpu", data_dir)
    config = FrozenTrainConfig(**contents["train_config"])
    model = nats_twin(dense, config.attention())
    state = model.state_dict()
    state.update(contents["scorers"])
    model.load_state_dict(state)
    return model.eval().to(resolve_device(device)), ScorerHistory(**contents["history"])


# ---- the comparison on one set of weights ------------------------------------------------------------------


def compare_on_frozen_weights(dense, tuned: dict, budgets=BUDGETS, n_samples: int = 256, progress=True):
    """The full cache, StreamingLLM and H2O at each budget, and NAtS with each (λ, C) → model of `tuned`:
    all decoded with eviction on the same dense weights (NAtS adds only its scorers)."""
    tokens, answers = experiment.held_out(n_samples)
    jobs = [("full", dense, experiment.SEQ_LEN, 1)]
    jobs += [(name, dense, budget, 1) for name in ("sliding", "h2o") for budget in budgets]
    jobs += [("nats", model, lam, chunk) for (lam, chunk), model in tuned.items()]
    rows = []
    for name, model, setting, chunk in tqdm(jobs, desc="decoding", disable=not progress):
        result = experiment.evaluate(model, name, setting, tokens, answers, chunk=chunk)
        rows.append(asdict(result))
    return rows


def reproduce_frozen(
    settings=SETTINGS,
    out_dir: Path = data.DATA_DIR,
    device="auto",
    progress=True,
    budgets=BUDGETS,
    n_samples: int = 256,
    **overrides,
) -> dict:
    """Train the scorers for each (λ, C) on the shipped dense model (from `out_dir`), write their
    checkpoints and the table (decoding `n_samples` held-out sequences; the baselines at `budgets`). The
    dense model and the fine-tuned checkpoints are only read."""
    out_dir = Path(out_dir)
    dense, _ = experiment.load_model(None, device, out_dir)
    backbone = data.read_manifest(out_dir)["files"][experiment.checkpoint_name()]["sha256"]
    tuned, configs = {}, {}
    for sparsity_weight, chunk in settings:
        config = FrozenTrainConfig(**{**overrides, "sparsity_weight": sparsity_weight, "chunk": chunk})
        tuned[sparsity_weight, chunk], history = train_scorers(dense, config, progress)
        path = out_dir / checkpoint_name(sparsity_weight, chunk)
        save_scorers(tuned[sparsity_weight, chunk], history, config, path, backbone)
        data.record_file(path, "checkpoint", REPRODUCE, train_config=asdict(config))
        configs[checkpoint_name(sparsity_weight, chunk)] = asdict(config)
    table = {
        "command": REPRODUCE,
        "regime": "frozen backbone: only the role scorers train (distillation to the dense model)",
        "backbone_sha256": backbone,
        "train_configs": configs,
        "results": compare_on_frozen_weights(dense, tuned, budgets, n_samples, progress),
    }
    path = out_dir / RESULTS
    path.write_text(json.dumps(table, indent=1) + "\n")
    data.record_file(path, "results", REPRODUCE)
    return table


def shared_baselines(fine_tuned: list[dict], frozen: list[dict]) -> list[tuple]:
    """(policy, budget, accuracy in `fine_tuned`, accuracy in `frozen`) for each baseline (and the full
    cache) that both tables decoded at the same budget: both ran the same dense weights."""
    earlier = {(r["policy"], r["setting"]): r["accuracy"] for r in fine_tuned if r["policy"] != "nats"}
    return [
        (r["policy"], r["setting"], earlier[r["policy"], r["setting"]], r["accuracy"])
        for r in frozen
        if (r["policy"], r["setting"]) in earlier
    ]


def load_results(data_dir: Path = data.DATA_DIR) -> dict:
    return json.loads(data.verified_path(RESULTS, data_dir).read_text())
