"""The NAtS mini-experiment, "records and queries": does a learned cache policy keep what recall needs?

**Task** (T = 64 tokens, 35 symbols). Position 0 is BOS. Four records `MARK key value` (distinct keys
out of 8, values out of 8) sit in the first half, among filler: a noisy counter over 16 symbols (the next
filler symbol is the previous + 1 mod 16 with probability 0.85, else uniform), which needs only local
context. The last 12 tokens are four queries `QRY key value` in random order: after each queried key the
model must produce the value its record gave, 52 or more tokens back. Chance is 1/8.

**Model.** A small causal language model (2 layers, width 64, 4 heads, MLP 4×, learned positions) whose
attention layers run dense, or NAtS with a `nats.RoleScorer` per layer, or token by token through a
`nats.KVCache` under any `nats.EvictionPolicy`.

**Pipeline.** Dense pre-training, then NAtS fine-tuning for several λ (the sparsity weight), then
evaluation by real decoding with eviction on held-out sequences, against StreamingLLM and H2O at the same
budget. `python -m fastattn_lib.nats_experiment reproduce` rebuilds the shipped checkpoints and table.
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
from torch import nn
from tqdm.auto import tqdm

from . import data, nats
from .checks import check_count
from .device import cpu_generator, resolve_device

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


@dataclass
class NatsModelConfig:
    vocab_size: int = VOCAB
    seq_len: int = SEQ_LEN
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    window: int = 8  # W: a SLIDING token is seen by the queries i with i − j ≤ W


class NatsAttention(nn.Module):
    """Causal multi-head attention with a NAtS role scorer; `mode` "dense" or "nats"."""

    def __init__(self, config: NatsModelConfig):
        super().__init__()
        self.n_heads, self.window = config.n_heads, config.window
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.scorer = nats.RoleScorer(config.d_model, config.n_heads)

    def heads(self, x):
        batch, n, width = x.shape
        return self.qkv(x).view(batch, n, 3, self.n_heads, width // self.n_heads).permute(2, 0, 3, 1, 4)

    def forward(self, x, mode: str = "dense"):
        q, k, v = self.heads(x)  # (B, H, N, dh)
        one_hot = None
        if mode == "dense":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            one_hot = self.scorer(x)  # (B, H, N, 3): straight-through samples in training, arg-max in eval
            y = nats.masked_attention(q, k, v, nats.soft_mask(one_hot, self.window))
        batch, _, n, _ = y.shape
        return self.proj(y.transpose(1, 2).reshape(batch, n, -1)), one_hot


class NatsTransformer(nn.Module):
    def __init__(self, config: NatsModelConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.seq_len, config.d_model)
        self.attentions = nn.ModuleList(NatsAttention(config) for _ in range(config.n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(config.d_model) for _ in range(2 * config.n_layers + 1))
        self.mlps = nn.ModuleList(
            nn.Sequential(
                nn.Linear(config.d_model, 4 * config.d_model),
                nn.GELU(),
                nn.Linear(4 * config.d_model, config.d_model),
            )
            for _ in range(config.n_layers)
        )
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, tokens: torch.Tensor, mode: str = "dense"):
        """Logits [B, N, vocab] and each layer's role one-hots (None when dense)."""
        if mode not in ("dense", "nats"):
            raise ValueError(f"mode: expected 'dense' or 'nats', got {mode!r}")
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.token_embedding(tokens) + self.position_embedding(positions)
        roles = []
        for layer, (attention, mlp) in enumerate(zip(self.attentions, self.mlps, strict=True)):
            y, one_hot = attention(self.norms[2 * layer](h), mode)
            h = h + y
            h = h + mlp(self.norms[2 * layer + 1](h))
            roles.append(one_hot)
        return self.head(self.norms[-1](h)), roles

    def new_caches(self, batch: int, device) -> list[nats.KVCache]:
        width = self.config.d_model // self.config.n_heads
        shape = (batch, self.config.n_heads)
        return [nats.KVCache(shape, width, width, self.head.weight.dtype, device) for _ in self.attentions]

    @torch.no_grad()
    def step(self, token: torch.Tensor, t: int, caches, policies, use_roles: bool = True) -> torch.Tensor:
        """One decoding step for token ids [B] at position t: each layer adds the token's K/V (and role) to
        its cache, attends over what the cache holds, then lets its policy evict. Returns logits [B, V]."""
        h = self.token_embedding(token[:, None]) + self.position_embedding.weight[t]  # (B, 1, m)
        for attention, mlp, norms, cache, policy in zip(
            self.attentions, self.mlps, self._norm_pairs(), caches, policies, strict=True
        ):
            x = norms[0](h)
            q, k, v = (part[:, :, 0] for part in attention.heads(x))  # (B, H, dh)
            role = torch.full(q.shape[:-1], nats.SLIDING, dtype=torch.long, device=q.device)
            if use_roles:  # the scorer's arg-max; the first token is always GLOBAL
                role = attention.scorer.logits(x)[:, :, 0].argmax(-1) if t > 0 else role.fill_(nats.GLOBAL)
            cache.append(k, v, t, role)
            y = cache.attend(q)  # (B, H, dh)
            cache.keep(policy.keep(cache, t))
            h = h + attention.proj(y.reshape(len(token), 1, -1))
            h = h + mlp(norms[1](h))
        return self.head(self.norms[-1](h))[:, 0]

    def _norm_pairs(self):
        return [(self.norms[2 * layer], self.norms[2 * layer + 1]) for layer in range(self.config.n_layers)]

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, policy_for_layer, use_roles: bool = True):
        """Teacher-forced decoding of tokens [B, N] through one evicting cache per layer
        (`policy_for_layer(layer)`). Returns logits [B, N, V] and cache sizes [layers, B, heads, N].
        With `use_roles` each token's role is the layer's scorer arg-max (first token GLOBAL)."""
        caches = self.new_caches(len(tokens), tokens.device)
        policies = [policy_for_layer(layer) for layer in range(self.config.n_layers)]
        logits, sizes = [], []
        for t in range(tokens.shape[1]):
            logits.append(self.step(tokens[:, t], t, caches, policies, use_roles))
            sizes.append(torch.stack([cache.sizes() for cache in caches]))
        return torch.stack(logits, dim=1), torch.stack(sizes, dim=-1)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, n_new: int, policy_for_layer, use_roles: bool = True):
        """Greedy generation after prompt [B, P] with evicting caches: the prompt is decoded token by token,
        then each arg-max prediction is fed back. Returns the tokens [B, P + n_new] and final cache sizes."""
        check_count("n_new", n_new, minimum=0)
        if prompt.shape[1] + n_new > self.config.seq_len:
            raise ValueError(f"n_new: prompt + n_new must fit in {self.config.seq_len} positions")
        caches = self.new_caches(len(prompt), prompt.device)
        policies = [policy_for_layer(layer) for layer in range(self.config.n_layers)]
        tokens = prompt
        for t in range(prompt.shape[1] + n_new - 1):
            logits = self.step(tokens[:, t], t, caches, policies, use_roles)
            if t + 1 >= prompt.shape[1]:
                tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
        return tokens, torch.stack([cache.sizes() for cache in caches])


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
    lr 3e-2) with the sparsity weight λ; spec §7's measured setting."""

    dense_steps: int = 1000
    nats_steps: int = 800
    sparsity_weight: float = 2.0  # λ
    batch_size: int = 32
    dense_lr: float = 3e-3
    backbone_lr: float = 1e-3
    scorer_lr: float = 3e-2
    seed: int = 0
    eval_every: int = 100

    def __post_init__(self):
        for name in ("dense_steps", "nats_steps"):
            check_count(name, getattr(self, name), minimum=0)
        for name in ("batch_size", "eval_every"):
            check_count(name, getattr(self, name))
        nats.sparsity_loss(torch.zeros(1, 3), self.sparsity_weight)  # validates λ


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


def _phase(model, mode, config, history, steps, optimizer, device, progress, sparsity_weight=0.0):
    tokens_all, answers_all = records_and_queries(20_000, seed=config.seed + (0 if mode == "dense" else 1))
    test_tokens, test_answers = (t.to(device) for t in held_out(256))
    order = cpu_generator(config.seed, f"nats-batches-{mode}")
    started = time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc=f"{mode} λ={sparsity_weight:g}", disable=not progress):
        model.train()
        batch = torch.randint(len(tokens_all), (config.batch_size,), generator=order)
        tokens, answers = tokens_all[batch].to(device), answers_all[batch].to(device)
        logits, roles = model(tokens, mode)
        loss = task_loss(logits, tokens, answers)
        if mode == "nats":
            loss = loss + sum(nats.sparsity_loss(r, sparsity_weight) for r in roles) / len(roles)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.loss[mode].append(loss.item())
        if step % config.eval_every == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                logits, roles = model(test_tokens, mode)
            history.eval_steps[mode].append(step)
            history.accuracy[mode].append(answer_accuracy(logits, test_tokens, test_answers))
            if mode == "nats":
                history.cache_share.append(float(sum(nats.sparsity_loss(r, 1.0) for r in roles) / len(roles)))
    history.seconds[mode] = time.perf_counter() - started


def pretrain_dense(config: NatsTrainConfig, device="auto", progress=True):
    """The dense model every λ starts from."""
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    model = NatsTransformer(NatsModelConfig()).to(device)
    history = NatsHistory()
    backbone = [p for name, p in model.named_parameters() if ".scorer." not in name]
    optimizer = torch.optim.AdamW(backbone, lr=config.dense_lr)
    _phase(model, "dense", config, history, config.dense_steps, optimizer, device, progress)
    return model, history


def finetune_nats(
    dense_model: NatsTransformer,
    dense_history: NatsHistory,
    config: NatsTrainConfig,
    device="auto",
    progress=True,
):
    """A copy of the dense model fine-tuned with NAtS at λ = config.sparsity_weight (every weight trains)."""
    device = resolve_device(device)
    model = NatsTransformer(dense_model.config).to(device)
    model.load_state_dict(dense_model.state_dict())
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


def evaluate(model: NatsTransformer, policy_name: str, setting, tokens=None, answers=None) -> DecodeResult:
    """Decode the held-out sequences with one policy: "full", "sliding" (StreamingLLM, 1 sink),
    "h2o" (budget = `setting`) or "nats" (the model's own roles, λ = `setting` is only recorded)."""
    if tokens is None:
        tokens, answers = held_out(256)
    device = model.head.weight.device
    tokens, answers = tokens.to(device), answers.to(device)
    window = model.config.window
    factories = {
        "full": lambda layer: nats.FullCache(),
        "sliding": lambda layer: nats.SlidingWindowWithSinks(int(setting), n_sinks=1),
        "h2o": lambda layer: nats.HeavyHitters(int(setting)),
        "nats": lambda layer: nats.NAtSPolicy(window),
    }
    if policy_name not in factories:
        raise ValueError(f"policy_name: expected one of {sorted(factories)}, got {policy_name!r}")
    model.eval()
    logits, sizes = model.decode(tokens, factories[policy_name], use_roles=policy_name == "nats")
    last = int(answers.max())
    per_step = sizes.float().mean(dim=(0, 1, 2))  # (N,): over layers, batch and heads
    return DecodeResult(
        policy=policy_name,
        setting=float(setting),
        accuracy=answer_accuracy(logits, tokens, answers),
        cache_at_last_query=float(per_step[last - 1]) + 1,  # what query `last` sees: the cache plus itself
        cache_fraction=(float(per_step[last - 1]) + 1) / (last + 1),
        mean_cache=float(per_step.mean()),
        sizes_over_steps=per_step.tolist(),
    )


# ---- checkpoints and the reproduction ---------------------------------------------------------------------

REPRODUCE = "python -m fastattn_lib.nats_experiment reproduce"
RESULTS = "nats_results.json"


def checkpoint_name(sparsity_weight=None) -> str:
    """`nats_dense.pt` for the dense model, `nats_lambda{λ}.pt` for a NAtS fine-tune."""
    return "nats_dense.pt" if sparsity_weight is None else f"nats_lambda{sparsity_weight:g}.pt"


def save_model(model: NatsTransformer, history: NatsHistory, config: NatsTrainConfig, path: Path) -> None:
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
    """A shipped model (dense when `sparsity_weight` is None, else NAtS at that λ), hash-verified, read with
    `torch.load(weights_only=True)`; returns (model in eval mode, history)."""
    path = data.verified_path(checkpoint_name(sparsity_weight), data_dir)
    contents = torch.load(path, map_location="cpu", weights_only=True)
    model = NatsTransformer(NatsModelConfig(**contents["model_config"]))
    model.load_state_dict(contents["state_dict"])
    return model.eval().to(resolve_device(device)), NatsHistory(**contents["history"])


def compare_policies(dense: NatsTransformer, tuned: dict, budgets=BUDGETS, progress=True) -> list[dict]:
    """Accuracy against cache size: the full cache, StreamingLLM and H2O at each budget on the dense
    model, and NAtS with each fine-tuned model's own roles."""
    jobs = [("full", dense, SEQ_LEN)]
    jobs += [(name, dense, budget) for name in ("sliding", "h2o") for budget in budgets]
    jobs += [("nats", model, sparsity_weight) for sparsity_weight, model in tuned.items()]
    tokens, answers = held_out(256)
    return [
        asdict(evaluate(model, name, setting, tokens, answers))
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
        setting = {"full": "all", "nats": f"λ = {r['setting']:g}"}.get(
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
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out-dir", type=Path, default=data.DATA_DIR)
    args = parser.parse_args(argv)
    table = reproduce(out_dir=args.out_dir, device=args.device)
    print(format_table(table["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
