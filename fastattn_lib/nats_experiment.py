"""The NAtS mini-experiment, "records and queries": does a learned cache policy keep what recall needs?

**Task** (T = 64 tokens, 35 symbols). Position 0 is BOS. Four records `MARK key value` (distinct keys
out of 8, values out of 8) sit in the first half, among filler: a noisy counter over 16 symbols (the next
filler symbol is the previous + 1 mod 16 with probability 0.85, else uniform), which needs only local
context. The last 12 tokens are four queries `QRY key value` in random order: after each queried key the
model must produce the value its record gave in the first half, at least 22 tokens back. Chance is 1/8.

**Model.** The library's `TinyTransformer` as a small causal language model (2 layers, width 64, 4 heads,
MLP 4×, learned positions, pre-LayerNorm, a `nats.RoleScorer` per layer). Its attention is a value: scaled
dot product for the dense model, `nats.NatsAttention(W)` for NAtS (`model.with_attention`); either runs
token by token through a `nats.KVCache` per layer under any `nats.EvictionPolicy` (`model.decode`).

**Pipeline.** Dense pre-training, then NAtS fine-tuning for several λ (the sparsity weight), then
evaluation by real decoding with eviction on held-out sequences, against StreamingLLM and H2O at the same
budget. In this regime every weight moves while NAtS learns, and the baselines run on the dense weights: the
comparison is confounded. `nats_frozen` trains only the scorers on the frozen dense model (the default
regime of the command below), so that every policy runs on the same weights.

`python -m fastattn_lib.nats_experiment reproduce --regime fine-tuned` rebuilds the fine-tuned checkpoints
and their table; `reproduce` alone (`--regime frozen`) trains the scorers on the shipped dense model and
leaves every fine-tuned file as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import data, nats
from .checks import check_choice, check_count, check_window
from .device import cpu_generator, resolve_device
from .models import ModelConfig, TinyTransformer, scaled_dot_product

# ---- the task ---------------------------------------------------------------------------------------------

SEQ_LEN, N_KEYS, N_VALUES, N_FILLER, N_RECORDS = 64, 8, 8, 16, 4
BOS, MARK, QRY = 0, 1, 2
FIRST_KEY = 3
FIRST_VALUE = FIRST_KEY + N_KEYS
FIRST_FILLER = FIRST_VALUE + N_VALUES
VOCAB = FIRST_FILLER + N_FILLER  # 35
QUERY_START = SEQ_LEN - 3 * N_RECORDS  # 52


def records_and_queries(n_samples: int, seed: int = 0):
    """(tokens [n, 64], answer_positions [n, 4]): the model must predict tokens[p + 1] at each p."""
    check_count("n_samples", n_samples)
    generator = cpu_generator(seed, "records-and-queries")
    n = n_samples
    # filler: a counter that skips to a random symbol 15 % of the time
    jumps = torch.rand(n, SEQ_LEN, generator=generator) >= 0.85
    random_symbols = torch.randint(N_FILLER, (n, SEQ_LEN), generator=generator)
    filler = torch.empty(n, SEQ_LEN, dtype=torch.long)
    filler[:, 0] = random_symbols[:, 0]
    for t in range(1, SEQ_LEN):  # a loop over 64 positions, vectorised over samples
        filler[:, t] = torch.where(jumps[:, t], random_symbols[:, t], (filler[:, t - 1] + 1) % N_FILLER)
    tokens = FIRST_FILLER + filler
    tokens[:, 0] = BOS
    keys = torch.rand(n, N_KEYS, generator=generator).argsort(dim=1)[:, :N_RECORDS]  # distinct keys
    values = torch.randint(N_VALUES, (n, N_RECORDS), generator=generator)
    # four non-overlapping 3-token slots in positions 1..31: slot s starts at 1 + 3·s + (a spread of gaps)
    gaps = torch.rand(n, N_RECORDS + 1, generator=generator)
    free = SEQ_LEN // 2 - 1 - 3 * N_RECORDS  # filler positions to spread between the records
    cuts = (gaps.cumsum(1) / gaps.sum(1, keepdim=True) * free).floor().long()[:, :N_RECORDS]
    starts = 1 + cuts + 3 * torch.arange(N_RECORDS)
    rows = torch.arange(n)[:, None]
    tokens[rows, starts] = MARK
    tokens[rows, starts + 1] = FIRST_KEY + keys
    tokens[rows, starts + 2] = FIRST_VALUE + values
    order = torch.rand(n, N_RECORDS, generator=generator).argsort(dim=1)
    query_starts = QUERY_START + 3 * torch.arange(N_RECORDS)
    tokens[:, query_starts] = QRY
    tokens[:, query_starts + 1] = FIRST_KEY + keys.gather(1, order)
    tokens[:, query_starts + 2] = FIRST_VALUE + values.gather(1, order)
    return tokens, (query_starts + 1).expand(n, N_RECORDS).clone()


# ---- the model --------------------------------------------------------------------------------------------

WINDOW = 8  # W: a SLIDING token is seen by the queries i with i − j ≤ W (in training, and by default after)


def model_config() -> ModelConfig:
    """The language model of the experiment: 2 pre-LayerNorm layers of width 64 with 4 heads, a role scorer
    per layer, next-token logits over the vocabulary."""
    return ModelConfig(
        vocab_size=VOCAB, seq_len=SEQ_LEN, n_classes=VOCAB, d_model=64, n_layers=2, n_heads=4,
        causal=True, layer_norm=True, role_scorer=True,
    )  # fmt: skip


def dense_model(config: ModelConfig | None = None) -> TinyTransformer:
    """A freshly initialised model whose attention is scaled dot product softmax(q·kᵀ/√d_h); its NAtS twin
    is `model.with_attention(nats.NatsAttention(W))`."""
    config = model_config() if config is None else config
    return TinyTransformer(config, attention=scaled_dot_product(config))


# ---- training ---------------------------------------------------------------------------------------------


def task_loss(logits: torch.Tensor, tokens: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on every position, plus the cross-entropy on the four answers."""
    every = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
    rows = torch.arange(len(tokens), device=tokens.device)[:, None]
    answer = F.cross_entropy(logits[rows, answers].flatten(0, 1), tokens[rows, answers + 1].flatten())
    return every + answer


def answer_accuracy(logits: torch.Tensor, tokens: torch.Tensor, answers: torch.Tensor) -> float:
    rows = torch.arange(len(tokens), device=tokens.device)[:, None]
    return float((logits[rows, answers].argmax(-1) == tokens[rows, answers + 1]).float().mean())


@dataclass
class NatsTrainConfig:
    """Dense pre-training (AdamW 3e-3), then NAtS fine-tuning of everything (backbone lr 1e-3, scorers
    lr 3e-2) with the sparsity weight λ and the window W: the setting of the shipped checkpoints."""

    dense_steps: int = 1000
    nats_steps: int = 800
    sparsity_weight: float = 2.0  # λ
    batch_size: int = 32
    dense_lr: float = 3e-3
    backbone_lr: float = 1e-3
    scorer_lr: float = 3e-2
    seed: int = 0
    eval_every: int = 100
    window: int = WINDOW  # W of the NAtS attention being fine-tuned

    def __post_init__(self):
        for name in ("dense_steps", "nats_steps"):
            check_count(name, getattr(self, name), minimum=0)
        for name in ("batch_size", "eval_every"):
            check_count(name, getattr(self, name))
        nats.sparsity_loss(torch.zeros(1, 3), self.sparsity_weight)  # validates λ
        check_window(self.window)


@dataclass
class NatsHistory:
    loss: dict[str, list[float]] = field(default_factory=lambda: {"dense": [], "nats": []})
    eval_steps: dict[str, list[int]] = field(default_factory=lambda: {"dense": [], "nats": []})
    accuracy: dict[str, list[float]] = field(default_factory=lambda: {"dense": [], "nats": []})
    cache_share: list[float] = field(default_factory=list)  # NAtS: mask share held by GLOBAL/LOCAL tokens
    seconds: dict[str, float] = field(default_factory=lambda: {"dense": 0.0, "nats": 0.0})


HELD_OUT_SEED = 20250214  # evaluation sequences; training draws from `seed`


def held_out(n_samples: int = 256):
    return records_and_queries(n_samples, seed=HELD_OUT_SEED)


def _phase(model, phase, config, history, steps, optimizer, device, progress, sparsity_weight=0.0):
    """Train `model` (dense, or NAtS whose layers return their roles) for `steps` batches of the task; the
    NAtS phase adds λ·sparsity_loss averaged over the layers."""
    tokens_all, answers_all = records_and_queries(20_000, seed=config.seed + (0 if phase == "dense" else 1))
    test_tokens, test_answers = (t.to(device) for t in held_out(256))
    order = cpu_generator(config.seed, f"nats-batches-{phase}")
    started = time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc=f"{phase} λ={sparsity_weight:g}", disable=not progress):
        model.train()
        batch = torch.randint(len(tokens_all), (config.batch_size,), generator=order)
        tokens, answers = tokens_all[batch].to(device), answers_all[batch].to(device)
        logits, roles = model.run(tokens)
        loss = task_loss(logits, tokens, answers)
        if phase == "nats":
            loss = loss + sum(nats.sparsity_loss(r, sparsity_weight) for r in roles) / len(roles)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.loss[phase].append(loss.item())
        if step % config.eval_every == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                logits, roles = model.run(test_tokens)
            history.eval_steps[phase].append(step)
            history.accuracy[phase].append(answer_accuracy(logits, test_tokens, test_answers))
            if phase == "nats":
                history.cache_share.append(float(sum(nats.sparsity_loss(r, 1.0) for r in roles) / len(roles)))
    history.seconds[phase] = time.perf_counter() - started


def pretrain_dense(config: NatsTrainConfig, device="auto", progress=True):
    """The dense model every λ starts from."""
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    model = dense_model().to(device)
    history = NatsHistory()
    backbone = [p for name, p in model.named_parameters() if ".scorer." not in name]
    optimizer = torch.optim.AdamW(backbone, lr=config.dense_lr)
    _phase(model, "dense", config, history, config.dense_steps, optimizer, device, progress)
    return model, history


def finetune_nats(
    dense: TinyTransformer, dense_history: NatsHistory, config: NatsTrainConfig, device="auto", progress=True
):
    """A copy of the dense model running `nats.NatsAttention(W)`, fine-tuned at λ = config.sparsity_weight
    and W = config.window (every weight trains); the dense model is left unchanged."""
    device = resolve_device(device)
    model = TinyTransformer(dense.config, attention=nats.NatsAttention(config.window)).to(device)
    model.load_state_dict(dense.state_dict())
    history = NatsHistory(**json.loads(json.dumps(asdict(dense_history))))
    scorers = [p for name, p in model.named_parameters() if ".scorer." in name]
    backbone = [p for name, p in model.named_parameters() if ".scorer." not in name]
    optimizer = torch.optim.AdamW(
        [
            {"params": backbone, "lr": config.backbone_lr},
            {"params": scorers, "lr": config.scorer_lr, "weight_decay": 0.0},
        ]
    )
    _phase(
        model, "nats", config, history, config.nats_steps, optimizer, device, progress, config.sparsity_weight
    )
    return model.eval(), history


# ---- evaluation by decoding -------------------------------------------------------------------------------

BUDGETS = (8, 12, 16, 24, 32)
SPARSITIES = (0.0, 2.0, 8.0)


@dataclass
class DecodeResult:
    policy: str
    setting: float  # the budget for baselines, λ for NAtS, N for the full cache
    accuracy: float  # answers right, decoding token by token with eviction
    cache_at_last_query: float  # entries held when the last answer is predicted (mean over layers, heads)
    cache_fraction: float  # the same, as a share of the tokens seen so far
    mean_cache: float  # entries held, averaged over every step as well
    sizes_over_steps: list[float]  # mean entries held after each step
    chunk: int = 1  # C of NAtS roles (1 for every other policy)


def evaluate(
    model: TinyTransformer,
    policy_name: str,
    setting,
    tokens=None,
    answers=None,
    window: int = WINDOW,
    chunk: int = 1,
) -> DecodeResult:
    """Decode the held-out sequences with one policy: "full", "sliding" (StreamingLLM, 1 sink),
    "h2o" (budget = `setting`) or "nats": the model runs `nats.NatsAttention(W, C)` with its own roles and
    its caches evict by them, W = `window`, C = `chunk` (λ = `setting` is only recorded)."""
    knob = window if policy_name == "nats" else setting
    return evaluate_sweep(model, policy_name, setting, [knob], tokens, answers, chunk)[0]


def evaluate_sweep(
    model: TinyTransformer, policy_name: str, setting, knobs, tokens=None, answers=None, chunk: int = 1
) -> list[DecodeResult]:
    """`evaluate` at several values of the policy's size knob at once, one `DecodeResult` each: the window
    W for "nats" (λ = `setting` recorded), the budget for "sliding" and "h2o" (`setting` is ignored; each
    result records its budget). The held-out sequences are repeated once per knob and decoded in one batch,
    each copy under its own knob (`nats.EvictionPolicy`): the same decisions as one `evaluate` per knob."""
    if tokens is None:
        tokens, answers = held_out(256)
    device = model.classifier.weight.device
    tokens, answers = tokens.to(device), answers.to(device)
    knobs = [int(k) for k in knobs] if policy_name != "full" else [int(setting)]
    per_sequence = [k for k in knobs for _ in range(len(tokens))]
    policies = {
        "full": lambda: nats.FullCache(),
        "sliding": lambda: nats.SlidingWindowWithSinks(per_sequence, n_sinks=1),
        "h2o": lambda: nats.HeavyHitters(per_sequence),
        "nats": lambda: nats.NAtSPolicy(per_sequence),
    }
    check_choice("policy_name", policy_name, tuple(policies))
    if policy_name == "nats":  # the attention reads roles; the window it would mask with is the policy's
        model = model.with_attention(nats.NatsAttention(knobs[0], chunk))
    model.eval()
    logits, sizes = model.decode(tokens.repeat(len(knobs), 1), policies[policy_name]())
    last = int(answers.max())
    results = []
    for i, knob in enumerate(knobs):
        rows = slice(i * len(tokens), (i + 1) * len(tokens))
        per_step = sizes[:, rows].float().mean(dim=(0, 1, 2))  # (N,): over layers, batch and heads
        results.append(
            DecodeResult(
                policy=policy_name,
                setting=float(setting if policy_name in ("nats", "full") else knob),
                accuracy=answer_accuracy(logits[rows], tokens, answers),
                cache_at_last_query=float(per_step[last - 1]) + 1,  # the cache plus the query itself
                cache_fraction=(float(per_step[last - 1]) + 1) / (last + 1),
                mean_cache=float(per_step.mean()),
                sizes_over_steps=per_step.tolist(),
                chunk=chunk if policy_name == "nats" else 1,
            )
        )
    return results


# ---- checkpoints and the reproduction ---------------------------------------------------------------------

REPRODUCE = "python -m fastattn_lib.nats_experiment reproduce --regime fine-tuned"
RESULTS = "nats_results.json"


def checkpoint_name(sparsity_weight=None) -> str:
    """`nats_dense.pt` for the dense model, `nats_lambda{λ}.pt` for a NAtS fine-tune."""
    return "nats_dense.pt" if sparsity_weight is None else f"nats_lambda{sparsity_weight:g}.pt"


def save_model(model: TinyTransformer, history: NatsHistory, config: NatsTrainConfig, path: Path) -> None:
    """The model's `ModelConfig` and weights, the training settings and history: tensors, numbers and
    strings only, so that `torch.load(weights_only=True)` reads it back."""
    torch.save(
        {
            "model_config": asdict(model.config),
            "train_config": asdict(config),
            "history": asdict(history),
            "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        },
        path,
    )


def load_model(sparsity_weight=None, device="auto", data_dir: Path = data.DATA_DIR):
    """A shipped model, hash-verified, read with `torch.load(weights_only=True)` (no object is unpickled):
    the dense model when `sparsity_weight` is None, else the NAtS model fine-tuned at that λ, running
    `nats.NatsAttention(W)` with the W it was trained with. Returns (model in eval mode, history)."""
    path = data.verified_path(checkpoint_name(sparsity_weight), data_dir)
    contents = torch.load(path, map_location="cpu", weights_only=True)
    model = dense_model(ModelConfig(**contents["model_config"]))
    model.load_state_dict(contents["state_dict"])
    if sparsity_weight is not None:
        model = model.with_attention(nats.NatsAttention(NatsTrainConfig(**contents["train_config"]).window))
    return model.eval().to(resolve_device(device)), NatsHistory(**contents["history"])


def compare_policies(
    dense: TinyTransformer, tuned: dict, budgets=BUDGETS, progress=True, window: int = WINDOW
) -> list[dict]:
    """Accuracy against cache size: the full cache, StreamingLLM and H2O at each budget on the dense
    model, and NAtS (window W = `window`) with each fine-tuned model's own roles."""
    jobs = [("full", dense, SEQ_LEN)]
    jobs += [(name, dense, budget) for name in ("sliding", "h2o") for budget in budgets]
    jobs += [("nats", model, sparsity_weight) for sparsity_weight, model in tuned.items()]
    tokens, answers = held_out(256)
    return [
        asdict(evaluate(model, name, setting, tokens, answers, window))
        for name, model, setting in tqdm(jobs, desc="decoding", disable=not progress)
    ]


def reproduce(
    sparsities=SPARSITIES, out_dir: Path = data.DATA_DIR, device="auto", progress=True, **overrides
):
    """Train the dense model and one NAtS model per λ, write checkpoints and the comparison table."""
    out_dir = Path(out_dir)
    config = NatsTrainConfig(**overrides)
    dense, history = pretrain_dense(config, device, progress)
    path = out_dir / checkpoint_name()
    save_model(dense, history, config, path)
    data.record_file(path, "checkpoint", REPRODUCE, train_config=asdict(config))
    tuned = {}
    for sparsity_weight in sparsities:
        run_config = NatsTrainConfig(**{**asdict(config), "sparsity_weight": sparsity_weight})
        tuned[sparsity_weight], tuned_history = finetune_nats(dense, history, run_config, device, progress)
        path = out_dir / checkpoint_name(sparsity_weight)
        save_model(tuned[sparsity_weight], tuned_history, run_config, path)
        data.record_file(path, "checkpoint", REPRODUCE, train_config=asdict(run_config))
    table = {"command": REPRODUCE, "train_config": asdict(config), "results": compare_policies(dense, tuned)}
    path = out_dir / RESULTS
    path.write_text(json.dumps(table, indent=1) + "\n")
    data.record_file(path, "results", REPRODUCE)
    return table


def load_results(data_dir: Path = data.DATA_DIR) -> dict:
    return json.loads(data.verified_path(RESULTS, data_dir).read_text())


def format_table(results: list[dict]) -> str:
    """The accuracy-vs-budget table as markdown."""
    lines = [
        "| policy | setting | KV entries at the last query (of 63) | share | answer accuracy |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        chunk = f", C = {r['chunk']}" if r.get("chunk", 1) > 1 else ""
        setting = {"full": "all", "nats": f"λ = {r['setting']:g}{chunk}"}.get(
            r["policy"], f"budget {r['setting']:g}"
        )
        size, share = r["cache_at_last_query"], r["cache_fraction"]
        lines.append(f"| {r['policy']} | {setting} | {size:.1f} | {share:.0%} | {r['accuracy']:.1%} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastattn_lib.nats_experiment", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=("reproduce",))
    parser.add_argument(
        "--regime",
        choices=("frozen", "fine-tuned"),
        default="frozen",
        help="frozen: train only the role scorers on the shipped dense model (default); "
        "fine-tuned: retrain the dense model and fine-tune every weight (overwrites those checkpoints)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out-dir", type=Path, default=data.DATA_DIR)
    args = parser.parse_args(argv)
    if args.regime == "fine-tuned":
        table = reproduce(out_dir=args.out_dir, device=args.device)
    else:
        from .nats_frozen import reproduce_frozen  # imports this module: imported here, not at the top

        table = reproduce_frozen(out_dir=args.out_dir, device=args.device)
    print(format_table(table["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
