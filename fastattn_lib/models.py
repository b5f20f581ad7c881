"""One tiny transformer for every experiment, its attention given as values (`fastattn_lib.attention`).

- token embedding + learned position embedding, width d (`d_model`, 64 in the ANNA paper);
- `n_layers` blocks, each h + attention(h), then h + MLP(h) with one hidden layer of 4d and GeLU
  (with `layer_norm`, both read a LayerNorm of h, and a last LayerNorm precedes the output layer);
- a per-position linear output layer: logits [batch, N, n_classes] (a language-model head when
  n_classes is the vocabulary).

Attention is not a mode the model is switched into: `TinyTransformer(config, attention=Softmax(beta))` takes
one attention object for every layer or a list with one per layer, and `model.with_attention(Anna(...))`
returns a new model that shares every parameter with this one and runs another attention. A single object
is given to layer i with seed + 1000·i, so the layers hash independently; inside a layer head h hashes
with seed + h. The ANNA experiments train with the softmax surrogate softmax(β·q̂·k̂ᵀ) and run the same
weights with ANNA; the NAtS experiment adds a role scorer per layer (`role_scorer`) whose roles the NAtS
attention kind (`nats.NatsAttention`) reads.

`decode(tokens, policy)` and `generate(prompt, n_new, policy)` run the model token by token through one
KV cache per layer whose entries an eviction policy (`nats.EvictionPolicy`) drops as decoding advances;
both share one layer loop (`step`), and every layer's step is `nats.cache_step`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .attention import Anna, CollisionKernel, Softmax, StraightThroughAnna
from .checks import check_beta, check_choice, check_count, check_token_ids
from .nats import SLIDING, KVCache, NatsAttention, RoleScorer, cache_step

LAYER_SEED_STRIDE = 1000  # layer i hashes with seed + 1000·i


@dataclass
class ModelConfig:
    vocab_size: int
    seq_len: int
    n_classes: int
    d_model: int = 64
    n_layers: int = 1
    causal: bool = False
    beta: float = 1.0  # β of the default attention, Softmax(β)
    n_heads: int = 1
    layer_norm: bool = False  # pre-LayerNorm blocks and a final LayerNorm
    role_scorer: bool = False  # a NAtS role scorer per layer

    def __post_init__(self):
        for name in ("vocab_size", "seq_len", "n_classes", "d_model", "n_layers", "n_heads"):
            check_count(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: expected a divisor of d_model={self.d_model}, got {self.n_heads}")
        check_beta(self.beta)
        for name in ("causal", "layer_norm", "role_scorer"):
            check_choice(name, getattr(self, name), (True, False))


class MultiHeadAttention(nn.Module):
    """The projections around attention: x (B, N, d) → q, k, v (B, H, N, m = d/H) → attention → (B, N, d)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: torch.Tensor):
        """q, k, v, each (B, H, N, m) with m = d/H, the width of a head."""
        batch, n, d_model = x.shape
        qkv = self.qkv(x).view(batch, n, 3, self.n_heads, d_model // self.n_heads)  # (B, N, 3, H, dh)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (B, H, N, dh)

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        """(B, H, N, dh) → the output projection of the concatenated heads (B, N, m)."""
        return self.proj(y.transpose(1, 2).flatten(2))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.causal = config.causal
        self.attention = MultiHeadAttention(config.d_model, config.n_heads)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, 4 * config.d_model),
            nn.GELU(),
            nn.Linear(4 * config.d_model, config.d_model),
        )
        norm = nn.LayerNorm if config.layer_norm else nn.Identity
        self.attention_norm, self.mlp_norm = norm(config.d_model), norm(config.d_model)
        self.scorer = RoleScorer(config.d_model, config.n_heads) if config.role_scorer else None

    def roles(self, x: torch.Tensor, chunk: int = 1):
        """The scorer's one-hot roles (B, H, N, 3) for the attention input x, one per chunk of `chunk`
        tokens, or None without a scorer."""
        return None if self.scorer is None else self.scorer(x, chunk)

    def attend(self, x: torch.Tensor, attention, roles=None) -> torch.Tensor:
        q, k, v = self.attention.split_heads(x)  # (B, H, N, dh) each
        extra = {} if roles is None else {"roles": roles}  # only an attention that reads roles gets them
        return self.attention.merge_heads(attention(q, k, v, causal=self.causal, **extra))

    def forward(self, h: torch.Tensor, attention):
        """(h after the block (B, N, m), the roles it used or None)."""
        x = self.attention_norm(h)
        roles = self.roles(x, attention.chunk) if getattr(attention, "reads_roles", False) else None
        h = h + self.attend(x, attention, roles)
        return h + self.mlp(self.mlp_norm(h)), roles

    def step(self, h: torch.Tensor, attention, t: int, cache: KVCache, policy) -> torch.Tensor:
        """The block on one new token h (B, 1, m) at position t, attending through this layer's `cache`
        (`nats.cache_step`). The token's role is the scorer's arg-max when `attention` reads roles (None until
        the token's chunk is complete: `RoleScorer.step_role`), else SLIDING (a policy other than NAtS ignores
        roles)."""
        x = self.attention_norm(h)
        q, k, v = (part[:, :, 0] for part in self.attention.split_heads(x))  # (B, H, dh)
        if getattr(attention, "reads_roles", False):
            role = self.scorer.step_role(x, t, attention.chunk, cache)  # (B, H) or None
        else:
            role = torch.full(q.shape[:-1], SLIDING, dtype=torch.long, device=q.device)
        y = cache_step(cache, policy, q, k, v, t, role)  # (B, H, dh)
        h = h + self.attention.merge_heads(y[:, :, None])
        return h + self.mlp(self.mlp_norm(h))


def scaled_dot_product(config: ModelConfig) -> Softmax:
    """The usual transformer attention softmax(q·kᵀ/√m)·v, m = d / H the width of a head."""
    return Softmax(1 / math.sqrt(config.d_model // config.n_heads), normalize=False)


def layer_attentions(attention, n_layers: int) -> tuple:
    """One attention object per layer: a list is used as given; a single object with a seed goes to layer
    i with seed + 1000·i, so that the layers draw independent hash functions."""
    if isinstance(attention, (list, tuple)):
        if len(attention) != n_layers:
            raise ValueError(f"attention: expected one object per layer ({n_layers}), got {len(attention)}")
        return tuple(attention)
    if not callable(attention) or not hasattr(attention, "weights"):
        raise ValueError(f"attention: expected an attention object (e.g. Softmax(beta)), got {attention!r}")
    if not hasattr(attention, "seed"):
        return (attention,) * n_layers
    return tuple(
        dataclasses.replace(attention, seed=attention.seed + LAYER_SEED_STRIDE * i) for i in range(n_layers)
    )


class TinyTransformer(nn.Module):
    def __init__(self, config: ModelConfig, attention=None):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.seq_len, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.d_model) if config.layer_norm else nn.Identity()
        self.classifier = nn.Linear(config.d_model, config.n_classes)
        self.attentions = layer_attentions(
            Softmax(config.beta) if attention is None else attention, len(self.blocks)
        )

    def extra_repr(self) -> str:
        return "attention=" + ", ".join(map(repr, dict.fromkeys(self.attentions)))

    def with_attention(self, attention) -> TinyTransformer:
        """A new model running `attention` (one object, or a list with one per layer) that shares every
        parameter tensor (and training mode) with this one; this model is left unchanged."""
        twin = copy.copy(self)  # a new object over the same submodules and parameters
        twin.attentions = layer_attentions(attention, len(self.blocks))
        return twin

    def use_attention(self, kind: str, **params) -> TinyTransformer:
        """Compatibility wrapper (the library never calls it): set this model's attention in place and return
        it. `("softmax", beta=)`, `("anna", n_tables=ℓ or [ℓ per layer], n_hashes=, family=, seed=, impl=,
        straight_through=, finite_kernel=)` or `("collision_kernel", n_hashes=, family=, n_tables=)`."""
        self.attentions = attentions_from_kind(kind, len(self.blocks), **params)
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Token plus position embeddings of token ids x [batch, N], checked: (B, N, m)."""
        check_token_ids("x", x, self.config.vocab_size, self.config.seq_len)
        positions = torch.arange(x.shape[1], device=x.device)
        return self.token_embedding(x) + self.position_embedding(positions)

    def hidden_states(self, x: torch.Tensor):
        """(the final hidden states [B, N, m], the output layer's input, each layer's roles or None)."""
        h, roles = self.embed(x), []
        for block, attention in zip(self.blocks, self.attentions, strict=True):
            h, layer_roles = block(h, attention)
            roles.append(layer_roles)
        return self.final_norm(h), roles

    def run(self, x: torch.Tensor):
        """(logits [B, N, n_classes], each layer's roles [B, H, N, 3] or None)."""
        h, roles = self.hidden_states(x)
        return self.classifier(h), roles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]  # (B, N, n_classes)

    def attention_weights(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's attention matrix [batch, heads, N, N] under the model's attention, for pictures."""
        h, weights = self.embed(x), []
        for block, attention in zip(self.blocks, self.attentions, strict=True):
            q, k, _ = block.attention.split_heads(block.attention_norm(h))
            h, roles = block(h, attention)  # the roles this layer ran with, for an attention that reads them
            extra = {} if roles is None else {"roles": roles}
            weights.append(attention.weights(q, k, causal=block.causal, **extra))
        return weights

    # ---- token by token, through KV caches that evict -----------------------------------------------------

    @torch.no_grad()
    def step(self, token: torch.Tensor, t: int, caches: list[KVCache], policy) -> torch.Tensor:
        """One decoding step for token ids [B] at position t, each layer through its cache (`Block.step`):
        the next-token logits [B, n_classes]."""
        h = self.token_embedding(token[:, None]) + self.position_embedding.weight[t]  # (B, 1, m)
        for block, attention, cache in zip(self.blocks, self.attentions, caches, strict=True):
            h = block.step(h, attention, t, cache, policy)
        return self.classifier(self.final_norm(h))[:, 0]

    def new_caches(self, batch: int, device) -> list[KVCache]:
        """One empty cache per layer for `batch` sequences. A cache attends with softmax(q·kᵀ/√m) over what
        it holds, which is the model's own attention only when every layer runs scaled dot product (a full
        cache then gives the forward pass) or NAtS masking (so does a NAtSPolicy with the same W)."""
        plain = scaled_dot_product(self.config)
        if any(a != plain and not isinstance(a, NatsAttention) for a in self.attentions):
            raise ValueError(f"attention: decoding needs {plain!r} or NatsAttention, got {self.attentions!r}")
        d_head = self.config.d_model // self.config.n_heads
        shape, dtype = (batch, self.config.n_heads), self.classifier.weight.dtype
        return [KVCache(shape, d_head, d_head, dtype, device) for _ in self.blocks]

    def decode(self, tokens: torch.Tensor, policy):
        """Teacher-forced decoding of token ids [B, N] through one cache per layer evicted by `policy`
        (a `nats.EvictionPolicy`). Returns (logits [B, N, n_classes], cache sizes [layers, B, H, N]: the
        entries each layer's cache holds after each step)."""
        check_token_ids("tokens", tokens, self.config.vocab_size, self.config.seq_len)
        caches = self.new_caches(len(tokens), tokens.device)
        logits, sizes = [], []
        for t in range(tokens.shape[1]):
            logits.append(self.step(tokens[:, t], t, caches, policy))
            sizes.append(torch.stack([cache.sizes() for cache in caches]))
        return torch.stack(logits, dim=1), torch.stack(sizes, dim=-1)

    def generate(self, prompt: torch.Tensor, n_new: int, policy):
        """Greedy generation after prompt [B, P]: the prompt is decoded token by token through the caches,
        then each arg-max prediction is fed back. Returns (tokens [B, P + n_new], final cache sizes
        [layers, B, H])."""
        check_count("n_new", n_new, minimum=0)
        check_token_ids("prompt", prompt, self.config.vocab_size, self.config.seq_len)
        if prompt.shape[1] + n_new > self.config.seq_len:
            raise ValueError(f"n_new: prompt + n_new must fit in {self.config.seq_len} positions")
        caches = self.new_caches(len(prompt), prompt.device)
        tokens = prompt
        for t in range(prompt.shape[1] + n_new - 1):
            logits = self.step(tokens[:, t], t, caches, policy)
            if t + 1 >= prompt.shape[1]:
                tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
        return tokens, torch.stack([cache.sizes() for cache in caches])

    def config_dict(self) -> dict:
        return asdict(self.config)


def attentions_from_kind(kind: str, n_layers: int, **params) -> tuple:
    """The per-layer attention objects that `use_attention(kind, **params)` names (see there)."""
    kinds = {
        "softmax": {"beta"},
        "anna": {"n_tables", "n_hashes", "family", "seed", "impl", "straight_through", "finite_kernel"},
        "collision_kernel": {"n_hashes", "family", "n_tables"},
    }
    check_choice("kind", kind, tuple(kinds))
    unexpected = sorted(set(params) - kinds[kind])
    if unexpected:
        raise ValueError(f"{kind} attention takes {sorted(kinds[kind])}, got unexpected {unexpected}")
    if kind == "softmax":
        return (Softmax(**params),) * n_layers
    tables = params.pop("n_tables", None)
    if kind == "collision_kernel":
        return tuple(CollisionKernel(n_tables=ell, **params) for ell in tables_per_layer(tables, n_layers))
    straight_through = params.pop("straight_through", False)
    if not straight_through:
        params.pop("finite_kernel", None)
    return hashing_layers(StraightThroughAnna if straight_through else Anna, tables, n_layers, **params)


def tables_per_layer(n_tables, n_layers: int) -> list:
    """ℓ for each layer: a list with one value per layer, or one value for every layer."""
    if not isinstance(n_tables, (list, tuple)):
        return [n_tables] * n_layers
    if len(n_tables) != n_layers:
        raise ValueError(f"n_tables: expected one ℓ per layer ({n_layers}), got {list(n_tables)}")
    return list(n_tables)


def hashing_layers(kind, n_tables, n_layers: int, seed: int = 0, **fields) -> tuple:
    """`kind(n_tables=ℓ_i, seed=seed + 1000·i, **fields)` for each layer i (`Anna` or `StraightThroughAnna`),
    ℓ_i from `n_tables` (one value, or one per layer)."""
    return tuple(
        kind(n_tables=ell, seed=seed + LAYER_SEED_STRIDE * i, **fields)
        for i, ell in enumerate(tables_per_layer(n_tables, n_layers))
    )
