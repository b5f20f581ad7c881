"""The tiny transformer of the ANNA experiments, with switchable attention.

- token embedding + learned position embedding, width m (`d_model`, 64 in the paper);
- `n_layers` blocks, each x + attention(x), then x + MLP(x) with one hidden layer of 4m and GeLU;
- a per-position linear classifier: logits [batch, N, n_classes].

Every block's attention is a one-head `attention.MultiHeadAttention`. Training uses the softmax surrogate
softmax(β·q̂·k̂ᵀ) on unit-normalised q and k; `use_attention("anna", n_tables=..., n_hashes=..., seed=...)`
swaps every layer to ANNA with the same weights (distillation by copying, spec §7.5). `n_tables` may be a
list, one ℓ per layer (the induction-heads experiment uses a larger ℓ in layer 1 than in layer 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .attention import MultiHeadAttention
from .checks import check_count


@dataclass
class ModelConfig:
    vocab_size: int
    seq_len: int
    n_classes: int
    d_model: int = 64
    n_layers: int = 1
    causal: bool = False
    beta: float = 1.0

    def __post_init__(self):
        for name in ("vocab_size", "seq_len", "n_classes", "d_model", "n_layers"):
            check_count(name, getattr(self, name))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = MultiHeadAttention(config.d_model, 1, causal=config.causal, beta=config.beta)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, 4 * config.d_model),
            nn.GELU(),
            nn.Linear(4 * config.d_model, config.d_model),
        )

    def forward(self, x):
        x = x + self.attention(x)  # (B, N, m)
        return x + self.mlp(x)


class TinyTransformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.seq_len, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.classifier = nn.Linear(config.d_model, config.n_classes)

    def use_attention(self, kind: str, **params) -> TinyTransformer:
        """Switch every layer: `("softmax", beta=)`, `("anna", n_tables=ℓ or [ℓ per layer], n_hashes=)` or
        `("collision_kernel", n_hashes=, n_tables=None, ℓ or [ℓ per layer])`, None meaning ℓ → ∞.

        With ANNA, layer i hashes with seed + 1000·i, so the layers draw independent hash functions.
        """
        per_layer = dict(params)
        has_tables = "n_tables" in per_layer
        tables = per_layer.pop("n_tables", None)
        if isinstance(tables, (list, tuple)) and len(tables) != len(self.blocks):
            raise ValueError(f"n_tables: expected one ℓ per layer ({len(self.blocks)}), got {list(tables)}")
        for i, block in enumerate(self.blocks):
            layer = dict(per_layer)
            if has_tables:
                layer["n_tables"] = tables[i] if isinstance(tables, (list, tuple)) else tables
            if kind == "anna":
                layer["seed"] = per_layer.get("seed", 0) + 1000 * i
            block.attention.use_attention(kind, **layer)
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Token plus position embeddings of token ids x [batch, N], checked: (B, N, m)."""
        if x.dim() != 2 or x.shape[1] > self.config.seq_len:
            raise ValueError(
                f"x: expected token ids [batch, N ≤ {self.config.seq_len}], got {tuple(x.shape)}"
            )
        positions = torch.arange(x.shape[1], device=x.device)
        return self.token_embedding(x) + self.position_embedding(positions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.classifier(h)  # (B, N, n_classes)

    def attention_weights(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's attention matrix [batch, heads, N, N] under the current attention, for pictures."""
        h = self.embed(x)
        weights = []
        for block in self.blocks:
            weights.append(block.attention.weights(h))
            h = block(h)
        return weights

    def config_dict(self) -> dict:
        return asdict(self.config)
