"""Training the softmax surrogate, carrying it over to ANNA, and the shipped checkpoints.

The ANNA paper trains a softmax surrogate and then distils it into an ANNA-transformer without saying how;
the recipe below is our reading of that step, and what we add to it:

1. **Surrogate** (the paper). ANNA hashes, so it has no gradient with respect to q and k. The same tiny
   transformer is trained with softmax(β·q̂·k̂ᵀ)·v on unit-normalised queries and keys instead; a large β
   makes softmax nearly an exact-match lookup.
2. **Weight copying** (our zero-shot reading of "distil"): copy every weight and run each layer with ANNA
   of ℓ tables of z hashes (`model.with_attention(Anna(...))`). Measured on Match2 it leaves a large error
   at ℓ = 8, z = 1 (the shipped results table, `zero_shot_grid`, has the numbers). LSH does find the
   partner key; what fails is the layer after attention, trained on softmax's average and handed ANNA's,
   a different mixture of values (`diagnosis` measures it).
3. **Fine-tuning on the task loss** (ours, extended to q and k): a short phase
   through the collision kernel (ANNA with infinitely many tables), then a phase through ANNA itself with
   fresh hash functions every step and a straight-through gradient for q and k, so that the MLP learns to
   read ANNA's mixtures; for Match2 its learning rate falls to 0 over the last two thirds of the phase.
   Fine-tuned on 100 000 sequences (the paper's 10 000 let the ANNA phase see each one ~19 times), this
   reaches the paper's reported Match2 result (no errors at ℓ = 8, z = 1) in most hash draws; the draws
   that make an error make one or a few, mostly from other keys diluting the partner
   (`diagnosis.error_causes`; the shipped results table has the means). Induction heads need one more
   idea: the kernel for the ℓ ANNA will have (`kernel_tables`), which also counts the rows where no key is
   likely to collide, both for the kernel phase and for the straight-through gradient.
4. **Evaluation.** Error = fraction of positions whose arg-max prediction is wrong, on the fixed 256-sample
   test set, averaged over 10 independent hash draws (seeds 0..9).

    python -m fastattn_lib.training reproduce --task match2        # the three β checkpoints + error grids
    python -m fastattn_lib.training reproduce --task induction

Both commands write the checkpoints and the result tables into `data/` and update its manifest.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .. import data, tasks
from ..attention import Anna, CollisionKernel, Softmax, StraightThroughAnna
from ..checks import check_count
from ..device import cpu_generator, resolve_device
from ..models import ModelConfig, TinyTransformer, hashing_layers

# The two experiments: how to build the model and where its data comes from. Induction heads are 1-hop
# k-hop with N = 100 and an alphabet of 4, read causally by two layers; "none" is its own class.
TASKS = {
    "match2": {
        "model": {"vocab_size": 37, "seq_len": 32, "n_classes": 2, "n_layers": 1, "causal": False},
        "test_set": "match2",
        "impl": "dense",  # the fastest ANNA at N = 32
    },
    "induction": {
        "model": {"vocab_size": 4, "seq_len": 100, "n_classes": 5, "n_layers": 2, "causal": True},
        "test_set": "khop",
        "impl": "tables",  # dense would hold ℓ·B·N² counts: 2 GB at ℓ = 96 for the test set
    },
}

# Per-task departures from TrainConfig's defaults (the Match2 setting). At lr 0.01 induction heads learn
# within a few hundred steps and then diverge (measured twice: test error 0.004 at step 900, then 0.72 and a
# loss of 14.8), so they train at lr 0.003 with gradients clipped to norm 1.
TASK_DEFAULTS = {
    # Match2's ANNA phase is longer and ends on a falling learning rate: at the end of 2 000 steps at a
    # constant 0.001 its loss was still falling and the error at ℓ = 8, z = 1 (0.2-0.3 %) varied threefold
    # between hash draws. Dilution by other keys' collisions (`diagnosis`) is what the MLP must learn to
    # read through, and the last steps at a small learning rate average over many draws. The fine-tuning
    # draws from ten times the paper's 10 000 sequences: with 6 000 ANNA steps on 10 000 sequences (each
    # seen ~19 times) β = 1 made no error in 3 and 5 of 10 hash draws on two fresh sets of 256 sequences
    # (a trial training every phase on 100 000 for 9 000 ANNA steps: 8 and 8). With these settings (the
    # surrogate on the paper's 10 000) the shipped β = 1 model is error-free in 6 of 10 draws on the test
    # set and 7 of 10 on fresh sequences (tests/test_training_figure1.py).
    "match2": {"finetune_steps": 9_000, "finetune_decay_steps": 6_000, "finetune_n_train": 100_000},
    "induction": {
        "steps": 2000,
        "lr": 0.003,
        "clip_norm": 1.0,
        # Distilled for ℓ = (96, 32), z = 2 with the finite-ℓ kernel: trained through the ℓ → ∞ kernel the
        # second layer learns keys that are only relatively close, and as ANNA 60 % of its rows found no
        # key at all. The ANNA phase runs at a tenth of the kernel's learning rate (one step ≈ 1 s here).
        "n_tables": (96, 32),
        "n_hashes": 2,
        "kernel_tables": True,
        "kernel_steps": 1000,
        "finetune_steps": 300,
        "finetune_lr": 0.0003,
    },
}


def check_task(task: str) -> dict:
    if task not in TASKS:
        raise ValueError(f"task: expected one of {sorted(TASKS)}, got {task!r}")
    return TASKS[task]


def training_set(task: str, n_samples: int, seed: int):
    """Fresh training data drawn with a seed distinct from the test sets' (which use 20250910)."""
    arguments = {k: v for k, v in data.TEST_SETS[check_task(task)["test_set"]].items() if k != "seed"}
    arguments["n_samples"] = n_samples
    return getattr(tasks, TASKS[task]["test_set"])(**arguments, seed=seed)


@dataclass
class TrainConfig:
    """One run: the surrogate (the paper's setting: Adam, lr 0.01, 10 000 samples, batches of 32), then the
    two phases of fine-tuning into ANNA (ours; "distilled" names their result; for Match2 on 100 000
    samples, see `TASK_DEFAULTS`). Phase lengths are in optimiser steps."""

    task: str = "match2"
    beta: float = 10.0
    steps: int = 5_000  # surrogate at inverse temperature β (paper: 20 000; ours at 0 error by 2 000)
    kernel_steps: int = 1_000  # q, k trained through ANNA's many-table limit (collision kernel)
    finetune_steps: int = 2_000  # trained through ANNA itself (straight-through), fresh hashes every step
    # the last steps of the ANNA phase (at most all of them): its learning rate falls to 0 on a half cosine
    finetune_decay_steps: int = 0
    n_tables: tuple[int, ...] = (8,)  # ℓ for the ANNA fine-tuning, one per layer (or one for all)
    n_hashes: int = 1  # z for the collision kernel and the ANNA fine-tuning
    # The kernel phase, and the straight-through gradient of the ANNA phase, model ANNA at ℓ = n_tables
    # (a row where nothing collides gives 0) rather than ℓ → ∞.
    kernel_tables: bool = False
    lr: float = 0.01
    clip_norm: float = (
        0.0  # gradient-norm clipping in every phase; 0 = off (the paper does not mention clipping)
    )
    kernel_lr: float = 0.003
    finetune_lr: float = 0.001
    batch_size: int = 32
    n_train: int = 10_000
    finetune_n_train: int = 0  # sequences the two fine-tuning phases draw from; 0: the surrogate's n_train
    seed: int = 0
    eval_every: int = 500

    def __post_init__(self):
        check_task(self.task)
        self.n_tables = tuple(self.n_tables)
        for name in ("steps", "kernel_steps", "finetune_steps", "finetune_decay_steps", "finetune_n_train"):
            check_count(name, getattr(self, name), minimum=0)
        for name in ("batch_size", "n_train", "eval_every", "n_hashes"):
            check_count(name, getattr(self, name))
        for ell in self.n_tables:
            check_count("n_tables", ell)
        n_layers = TASKS[self.task]["model"]["n_layers"]
        if len(self.n_tables) not in (1, n_layers):
            raise ValueError(
                f"n_tables: expected 1 or {n_layers} values for {self.task}, got {self.n_tables}"
            )

    def tables_per_layer(self) -> list[int]:
        layers = TASKS[self.task]["model"]["n_layers"]
        return list(self.n_tables) * layers if len(self.n_tables) == 1 else list(self.n_tables)


PHASES = ("surrogate", "kernel", "anna")


@dataclass
class History:
    """Training loss per step and test error every `eval_every` steps, for each phase, and the wall time."""

    loss: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    eval_steps: dict[str, list[int]] = field(default_factory=lambda: {p: [] for p in PHASES})
    test_error: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    seconds: dict[str, float] = field(default_factory=lambda: {p: 0.0 for p in PHASES})


def error_rate(model: TinyTransformer, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Fraction of positions whose arg-max prediction differs from the label."""
    device = next(model.parameters()).device
    wrong = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size].to(device))
            wrong += (logits.argmax(-1).cpu() != y[start : start + batch_size]).sum().item()
    return wrong / y.numel()


def anna_errors(
    model: TinyTransformer, x, y, n_tables, n_hashes: int, n_draws: int = 10, first_seed: int = 0, **anna
) -> list:
    """Test error of the model run with ANNA (ℓ = `n_tables`, one value or one per layer; z = `n_hashes`;
    `anna`: further `Anna` fields) in every layer, one value per hash draw with seeds first_seed, …,
    first_seed + n_draws − 1."""
    layers = len(model.blocks)
    return [
        error_rate(
            model.with_attention(hashing_layers(Anna, n_tables, layers, seed, n_hashes=n_hashes, **anna)),
            x,
            y,
        )
        for seed in range(first_seed, first_seed + n_draws)
    ]


def anna_error(model: TinyTransformer, x, y, n_tables, n_hashes: int, n_draws: int = 10, **anna) -> float:
    """The mean of `anna_errors` over the hash draws with seeds 0..n_draws−1."""
    return sum(anna_errors(model, x, y, n_tables, n_hashes, n_draws, **anna)) / n_draws


def previous_token_weight(model: TinyTransformer, x: torch.Tensor) -> float:
    """Mean weight the first layer puts on key i − 1 (the first step of an induction head), under the
    model's current attention, over positions i ≥ 1 of the sequences x [batch, N]."""
    device = next(model.parameters()).device
    with torch.no_grad():
        first = model.attention_weights(x.to(device))[0]  # (B, H, N, N)
    return float(torch.diagonal(first, offset=-1, dim1=-2, dim2=-1).mean())


def build_model(task: str, beta: float, seed: int = 0, device="auto") -> TinyTransformer:
    torch.manual_seed(seed)  # initial weights; the only use of the global generator
    model = TinyTransformer(ModelConfig(**check_task(task)["model"], beta=beta))
    return model.to(resolve_device(device))


def learning_rate_factor(step: int, steps: int, decay_steps: int) -> float:
    """The learning rate's multiplier for step `step` (0-based) of `steps`: 1, then over the last
    `decay_steps` (all of them if there are fewer) a half cosine from 1 down to 0, reached once the phase
    is over."""
    decay_steps = min(decay_steps, steps)
    into = step - (steps - decay_steps)
    if decay_steps == 0 or into < 0:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min(into, decay_steps) / decay_steps))


def _run_phase(
    model,
    phase,
    config,
    train_data,
    test_data,
    history,
    device,
    progress,
    steps,
    lr,
    attention,
    decay_steps=0,
):
    """Adam on the cross-entropy for `steps` steps, the model run with the attention `attention(step)`;
    the learning rate `lr` falls along a half cosine over the last `decay_steps` steps."""
    x_train, y_train = train_data
    parameters = list(model.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, steps, decay_steps)
    )
    order = cpu_generator(config.seed, f"batches-{phase}")
    started = time.perf_counter()
    bar = tqdm(range(1, steps + 1), desc=f"{config.task} β={config.beta:g} {phase}", disable=not progress)
    for step in bar:
        batch = torch.randint(len(x_train), (config.batch_size,), generator=order)
        logits = model.with_attention(attention(step))(x_train[batch].to(device))
        loss = F.cross_entropy(logits.flatten(0, 1), y_train[batch].to(device).flatten())
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{config.task} β={config.beta:g}: the {phase} phase diverged at step {step} "
                f"(loss {loss.item()}); try a smaller lr or clip_norm > 0"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(parameters, config.clip_norm)
        optimizer.step()
        schedule.step()
        history.loss[phase].append(loss.item())
        if step % config.eval_every == 0 or step == steps:
            error = _phase_error(model.with_attention(attention(step)), phase, config, test_data)
            history.eval_steps[phase].append(step)
            history.test_error[phase].append(error)
            bar.set_postfix(loss=f"{loss.item():.3f}", test_error=f"{error:.3f}")
    history.seconds[phase] = time.perf_counter() - started


def _phase_error(model, phase, config, test_data) -> float:
    if phase == "anna":  # three draws keep the curve cheap; final numbers use ten
        return anna_error(model, *test_data, config.tables_per_layer(), config.n_hashes, n_draws=3)
    return error_rate(model, *test_data)


@dataclass
class TrainResult:
    model: TinyTransformer  # fine-tuned, running softmax; `.with_attention(Anna(...))` runs it as ANNA
    surrogate_state: dict  # the weights right after the surrogate phase, for weight copying (zero-shot)
    history: History
    config: TrainConfig

    def surrogate(self) -> TinyTransformer:
        """A copy of the model with the surrogate's weights (the starting point of weight copying)."""
        model = TinyTransformer(self.model.config).to(next(self.model.parameters()).device)
        model.load_state_dict(self.surrogate_state)
        return model.eval()


def kernel_attention(config: TrainConfig) -> list[CollisionKernel]:
    """The collision kernel of each layer that the kernel phase trains through (for ANNA's ℓ when
    `kernel_tables`, else ℓ → ∞)."""
    tables = config.tables_per_layer() if config.kernel_tables else [None] * len(config.tables_per_layer())
    return [CollisionKernel(config.n_hashes, n_tables=ell) for ell in tables]


def train(config: TrainConfig, device="auto", progress: bool = True) -> TrainResult:
    """The whole recipe: surrogate, then fine-tuning into ANNA.

    1. `surrogate`: softmax(β·q̂·k̂ᵀ) attention, every weight trained (`config.steps`).
    2. `kernel`: the same weights trained through the collision kernel p(θ)^z, the attention ANNA computes
       with infinitely many tables (`attention.collision_kernel_weights`). Softmax at large β only needs the
       partner key to be the *closest* one; LSH also needs it to be *close*, and this phase supplies that.
       With `kernel_tables` the kernel is the one for ANNA's own ℓ, whose rows shrink by the chance that
       nothing collides (`collision_kernel_weights(n_tables=)`), so a query with no close key costs loss.
    3. `anna`: ANNA itself with ℓ = `config.n_tables`, fresh hash functions every step (the functions are
       drawn, never learned). v and everything after attention get ANNA's exact gradient; q and k get the
       collision kernel's (`attention.straight_through_anna`), weighted by ANNA's real finite-ℓ mistakes.

    Set `kernel_steps` and `finetune_steps` to 0 for weight copying alone.
    """
    device = resolve_device(device)
    model = build_model(config.task, config.beta, config.seed, device)
    train_data = training_set(config.task, config.n_train, config.seed)
    tuning_data = (
        training_set(config.task, config.finetune_n_train, config.seed)
        if config.finetune_n_train
        else train_data
    )
    test_data = data.load_test_set(TASKS[config.task]["test_set"])
    history = History()
    common = (config, train_data, test_data, history, device, progress)
    tuning = (config, tuning_data, test_data, history, device, progress)

    def softmax(step):
        return Softmax(config.beta)

    def kernel(step):
        return kernel_attention(config)

    def anna(step):  # impl="dense" is the fastest of the three at these sizes (N ≤ 100)
        draw = config.seed * 1_000_003 + 10_000 + step  # never the evaluation seeds 0..9
        return hashing_layers(
            StraightThroughAnna,
            config.tables_per_layer(),
            len(model.blocks),
            seed=draw,
            n_hashes=config.n_hashes,
            impl="dense",
            finite_kernel=config.kernel_tables,
        )

    model.train()
    _run_phase(model, "surrogate", *common, config.steps, config.lr, softmax)
    surrogate_state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    _run_phase(model, "kernel", *tuning, config.kernel_steps, config.kernel_lr, kernel)
    _run_phase(
        model, "anna", *tuning, config.finetune_steps, config.finetune_lr, anna, config.finetune_decay_steps
    )
    model.eval()
    return TrainResult(model, surrogate_state, history, config)
