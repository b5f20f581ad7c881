"""Why copying a Match2 surrogate's weights into ANNA fails, measured on the attention the MLP reads.

Weight copying keeps q and k, so whether LSH *finds* the partner key is one question; what the layer after
attention *receives* is another. These functions measure both on a one-layer Match2 model:

- `partner_mask`       which keys hold the partner of each query's token (x_i + x_j ≡ 0 mod |Σ|, j ≠ i);
- `mixture`            under one attention: test error, the partner's share of each row's weight, how often
                       a partner collides at all, how many other keys share the row, empty rows;
- `PartnersOnly`       ANNA with every collision of a non-partner key removed: the error without dilution;
- `diagnose`           softmax, ANNA and partners-only ANNA side by side, averaged over hash draws;
- `share_by_tables`    the partner's share under ANNA as ℓ grows (it does not grow with ℓ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..attention import Anna, Softmax
from ..checks import check_count
from .recipe import error_rate


def partner_mask(x: torch.Tensor, modulus: int) -> torch.Tensor:
    """[B, N, N] bool: key j holds the partner of query i's token (x_i + x_j ≡ 0 mod `modulus`), j ≠ i."""
    partners = (x[:, :, None] + x[:, None, :]) % modulus == 0
    return partners & ~torch.eye(x.shape[1], dtype=torch.bool, device=x.device)


def first_layer_qk(model, x: torch.Tensor):
    """The first layer's queries and keys [B, H, N, d] on token ids x, as that layer computes them."""
    block = model.blocks[0]
    with torch.no_grad():
        q, k, _ = block.attention.split_heads(block.attention_norm(model.embed(x)))
    return q, k


@dataclass(frozen=True, eq=False)
class PartnersOnly:
    """ANNA (`anna`) with the collisions of non-partner keys removed: a row that met a partner averages the
    partners only; a row that met none keeps ANNA's weights. `partners` [B, N, N] is `partner_mask` of the
    batch this object is applied to (a measuring device, not an attention one could compute)."""

    anna: Anna
    partners: torch.Tensor

    def weights(self, q, k, causal: bool = False) -> torch.Tensor:
        weights = self.anna.weights(q, k, causal)  # (B, H, N, N)
        kept = weights * self.partners[:, None]
        total = kept.sum(-1, keepdim=True)
        return torch.where(total > 0, kept / total.clamp(min=torch.finfo(kept.dtype).tiny), weights)

    def __call__(self, q, k, v, causal: bool = False) -> torch.Tensor:
        return self.weights(q, k, causal) @ v


@dataclass
class Mixture:
    """What one attention hands the MLP on Match2, over the positions whose token has a partner j ≠ i."""

    error: float  # test error (all positions)
    partner_share: float  # mean Σ_{j partner} w_ij
    met: float  # fraction of those positions with w_ij > 0 for some partner j
    other_keys: float  # mean number of non-partner keys j ≠ i with w_ij > 0
    empty: float  # fraction of all positions whose row has no weight at all (ANNA met no key)


def mixture(model, attention, x: torch.Tensor, y: torch.Tensor) -> Mixture:
    """`Mixture` of the first (Match2: only) layer of `model` run with `attention`."""
    partners = partner_mask(x, model.config.vocab_size)
    has_partner = partners.any(-1)
    q, k = first_layer_qk(model, x)
    with torch.no_grad():
        weights = attention.weights(q, k)[:, 0]  # (B, N, N): the first head
    hit = weights > 0
    others = hit & ~partners & ~torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
    return Mixture(
        error=error_rate(model.with_attention(attention), x, y),
        partner_share=float((weights * partners).sum(-1)[has_partner].mean()),
        met=float((hit & partners).any(-1)[has_partner].float().mean()),
        other_keys=float(others.sum(-1)[has_partner].float().mean()),
        empty=float((weights.sum(-1) == 0).float().mean()),
    )


def _mean(mixtures: list[Mixture]) -> Mixture:
    return Mixture(
        **{name: float(np.mean([getattr(m, name) for m in mixtures])) for name in Mixture.__annotations__}
    )


def diagnose(model, beta: float, x, y, n_tables: int = 8, n_hashes: int = 1, seeds=range(10)) -> dict:
    """{"softmax", "anna", "partners only"}: `Mixture` of the model under softmax at its β, under ANNA
    (ℓ, z) and under `PartnersOnly` ANNA, the last two averaged over hash draws with the given `seeds`."""
    check_count("n_tables", n_tables)
    check_count("n_hashes", n_hashes)
    partners = partner_mask(x, model.config.vocab_size)
    draws = [Anna(n_tables, n_hashes, seed=seed, impl="dense") for seed in seeds]
    return {
        "softmax": mixture(model, Softmax(beta), x, y),
        "anna": _mean([mixture(model, anna, x, y) for anna in draws]),
        "partners only": _mean([mixture(model, PartnersOnly(anna, partners), x, y) for anna in draws]),
    }


def share_by_tables(model, x, tables=(1, 2, 4, 8, 16), n_hashes: int = 1, seeds=range(10)) -> np.ndarray:
    """The partner's mean share of ANNA's weights (positions with a partner j ≠ i) for each ℓ in `tables`,
    averaged over hash draws."""
    partners = partner_mask(x, model.config.vocab_size)
    has_partner = partners.any(-1)
    q, k = first_layer_qk(model, x)
    shares = []
    for ell in tables:
        check_count("n_tables", ell)
        per_draw = [
            float(
                (Anna(ell, n_hashes, seed=seed, impl="dense").weights(q, k)[:, 0] * partners)
                .sum(-1)[has_partner]
                .mean()
            )
            for seed in seeds
        ]
        shares.append(np.mean(per_draw))
    return np.asarray(shares)


def summary(measured: dict) -> str:
    """One line per β of {β: `diagnose(...)`}: the partner's share, how often ANNA meets the partner and with
    how many other keys, and the three errors."""
    lines = []
    for beta, kinds in measured.items():
        soft, anna, clean = kinds["softmax"], kinds["anna"], kinds["partners only"]
        lines.append(
            f"β = {beta:g}: partner's share {soft.partner_share:.2f} under softmax, {anna.partner_share:.2f} "
            f"under ANNA, which meets it in {anna.met:.0%} of rows with {anna.other_keys:.1f} other keys; "
            f"error {soft.error:.1%} (softmax), {anna.error:.1%} (ANNA), {clean.error:.1%} (partners only)"
        )
    return "\n".join(lines)


@dataclass
class ErrorCauses:
    """Where a Match2 model run with one ANNA draw goes wrong, in positions."""

    missed: int  # the token has a partner j ≠ i, but no partner collided with the query
    diluted: int  # a partner collided, yet the prediction is wrong
    false_alarm: int  # no partner j ≠ i, predicted wrongly


def error_causes(model, attention, x: torch.Tensor, y: torch.Tensor) -> ErrorCauses:
    """Split the wrong positions of `model` run with `attention` by whether ANNA met a partner key."""
    device = next(model.parameters()).device  # the test set may sit on the CPU while the model is on a GPU
    x, y = x.to(device), y.to(device)
    partners = partner_mask(x, model.config.vocab_size)
    has_partner = partners.any(-1)
    q, k = first_layer_qk(model, x)
    with torch.no_grad():
        met = ((attention.weights(q, k)[:, 0] > 0) & partners).any(-1)
        wrong = model.with_attention(attention)(x).argmax(-1) != y
    return ErrorCauses(
        missed=int((wrong & has_partner & ~met).sum()),
        diluted=int((wrong & has_partner & met).sum()),
        false_alarm=int((wrong & ~has_partner).sum()),
    )
