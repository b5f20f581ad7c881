"""NAtS (Neural Attention Search, Deng & Lindauer 2025): learned token roles that decide how long each key
stays in the KV cache, and the eviction policies it is compared with.

Every token j gets one role per layer and head:

* GLOBAL (0): visible to every later query; never evicted.
* LOCAL (1): visible until the next GLOBAL token of the same head arrives, that token included. With
  e_j = min{t ≥ j : role_t = GLOBAL}, query i sees j iff i ≤ e_j.
* SLIDING (2): visible to the queries i with i − j ≤ W, then evicted.

Together with causality this gives the mask M_ij (`nats_mask`). Each column is one contiguous run of
queries starting at the diagonal, so a cache that drops key j after its last query reproduces masked
attention exactly (`decode_with_cache`). Attention multiplies the exponentiated scores by the mask,
o_i = Σ_j M_ij·exp(s_ij)·v_j / Σ_j M_ij·exp(s_ij), which for a 0/1 mask is the usual −∞ masking.

Roles come from a bias-free linear `RoleScorer` on the detached hidden state (3 logits per head), sampled
with hard straight-through Gumbel-softmax in training and taken by arg-max at inference; the first token is
always GLOBAL. `soft_mask` is the mask as a differentiable function of the one-hot roles, in a product form
that is our reconstruction (the official code computes the mask's gradient by hand inside its kernel):

    M_ij = g_j + l_j·∏_{t=j+1}^{i−1}(1 − g_t) + s_j·[i − j ≤ W]      (j ≤ i; 0 above the diagonal)

so autograd trains the scorer through the attention. `sparsity_loss` is λ times the share of the causal
mask that GLOBAL and LOCAL tokens occupy, an explicit, normalised version of the paper's penalty (its λ
values, injected as gradients, are not comparable).

**Chunks** (`chunk` = C). The official code gives one role to each chunk of C consecutive tokens: the
scorer reads the chunk's mean-pooled hidden state, and every token of the chunk takes the role. While
decoding, a chunk's role is known only once its last token has arrived; until then its tokens are held as
if GLOBAL (as the official code does). The mask that matches this decoder exactly is our reconstruction:
with a(i) = ⌊i/C⌋ the chunk of token i,

    M_ij = [j ≤ i]·( [a(i) = a(j)] ∨ g_j ∨ (l_j ∧ a(i) ≤ a(e_j)) ∨ (s_j ∧ i − j ≤ W) )

so a query sees every earlier token of its own chunk, a LOCAL chunk stays visible to the whole GLOBAL chunk
that closes its span (that chunk's role is only known at its end), and W stays in tokens (the official code
counts it in chunks; in tokens, C does not change how much recent context a SLIDING token covers). C = 1
is the per-token rule above.

`NatsAttention(W, C)` is this masking as one more attention kind: `TinyTransformer.with_attention(
NatsAttention(W))` runs a model's layers with the roles of their scorers. Token-by-token decoding goes
through `cache_step` (append K/V, attend, evict), the one step that both `decode` (attention level) and
the model's `TinyTransformer.decode` / `generate` (one cache per layer) are built on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .checks import (
    GLOBAL,
    LOCAL,
    SLIDING,
    check_chunk_roles,
    check_count,
    check_nonnegative_number,
    check_roles,
    check_window,
)
from .kv_cache import (  # noqa: F401  (the cache and its policies are public here too)
    EvictionPolicy,
    FullCache,
    HeavyHitters,
    KVCache,
    NAtSPolicy,
    SlidingWindowWithSinks,
    cache_step,
    decode,
    decode_with_cache,
)

ROLE_NAMES = ("global", "local", "sliding")


def span_ends(roles: torch.Tensor) -> torch.Tensor:
    """e_j = the position of the first GLOBAL at or after j, or N when there is none: [..., N]."""
    check_roles(roles)
    n = roles.shape[-1]
    positions = torch.arange(n, device=roles.device).expand_as(roles)
    at_global = torch.where(roles == GLOBAL, positions, n)
    # a running minimum from the right: flip, cumulative minimum, flip back
    return at_global.flip(-1).cummin(dim=-1).values.flip(-1)


def nats_mask(roles: torch.Tensor, window: int, chunk: int = 1) -> torch.Tensor:
    """M [..., N, N] (query i, key j), True where query i sees key j under the roles (module docstring);
    with `chunk` = C > 1 the roles must be alike inside each chunk of C tokens."""
    check_roles(roles)
    check_window(window)
    check_chunk_roles("roles", roles, chunk)
    n = roles.shape[-1]
    i = torch.arange(n, device=roles.device)[:, None]
    j = torch.arange(n, device=roles.device)[None, :]
    role = roles[..., None, :]  # (..., 1, N): the key's role, the same for every query row
    visible = (
        (role == GLOBAL)
        | ((role == LOCAL) & (i // chunk <= span_ends(roles)[..., None, :] // chunk))
        | ((role == SLIDING) & (i - j <= window))
        | (i // chunk == j // chunk)  # the query's own chunk: its role is not known yet while decoding
    )
    return visible & (j <= i)


def sliding_window_mask(n: int, window: int, device=None) -> torch.Tensor:
    """The plain causal sliding-window mask, i − W ≤ j ≤ i: [N, N]."""
    check_window(window)
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    return (j <= i) & (i - j <= window)


def soft_mask(one_hot: torch.Tensor, window: int, chunk: int = 1) -> torch.Tensor:
    """The mask as a differentiable function of the role one-hots [..., N, 3] (alike inside each chunk of
    `chunk` tokens): [..., N, N]. Equal to `nats_mask` for exact one-hots.

        M_ij = g_j + l_j·∏_{c=a(j)+1}^{a(i)−1}(1 − g_c) + s_j·[i − j ≤ W]      (j ≤ i)

    with the product over the chunks strictly between key and query (the tokens, when C = 1), and 1 for the
    earlier tokens of the query's own chunk.
    """
    check_window(window)
    if one_hot.shape[-1] != 3 or one_hot.dim() < 2:
        raise ValueError(f"one_hot: expected shape [..., N, 3], got {tuple(one_hot.shape)}")
    check_chunk_roles("one_hot", one_hot, chunk)
    mask = role_mask(one_hot, window, chunk)
    n = one_hot.shape[-2]
    i = torch.arange(n, device=one_hot.device)[:, None]
    j = torch.arange(n, device=one_hot.device)[None, :]
    own_chunk = (i // chunk == j // chunk) & (j < i)  # empty when C = 1
    return torch.where(own_chunk, torch.ones((), dtype=mask.dtype, device=mask.device), mask)


def role_mask(one_hot: torch.Tensor, window: int, chunk: int) -> torch.Tensor:
    """g_j + l_j·∏(1 − g_c) + s_j·[i − j ≤ W] below the diagonal, without the own-chunk rule; callers check.

    The product ∏_{c=b+1}^{a−1}(1 − g_c) over chunks is a cumulative product down each column of a
    chunk-level matrix (O(N²) memory, no N³ tensor), whose gradient reaches every g_c in the span."""
    g, l, s = one_hot.unbind(-1)  # (..., N) each
    n = g.shape[-1]
    chunk_of = torch.arange(n, device=g.device) // chunk  # a(i)
    g_chunk = g[..., ::chunk]  # (..., N_c): a chunk's global indicator, read at its first token
    n_chunks = g_chunk.shape[-1]
    a = torch.arange(n_chunks, device=g.device)[:, None]
    b = torch.arange(n_chunks, device=g.device)[None, :]
    # factor[a, b] = 1 − g_{a−1} while chunk a − 1 lies strictly inside (b, a), else 1
    previous = F.pad(1 - g_chunk, (1, 0), value=1.0)[..., :n_chunks]  # previous[a] = 1 − g_{a−1}
    one = torch.ones((), dtype=g.dtype, device=g.device)
    factor = torch.where(a - 1 > b, previous[..., :, None], one)
    still_open = factor.cumprod(dim=-2)  # (..., N_c, N_c): ∏_{c=b+1}^{a−1} (1 − g_c)
    if chunk > 1:  # from chunks to tokens (with C = 1 they are the same)
        still_open = still_open[..., chunk_of[:, None], chunk_of[None, :]]  # (..., N, N)
    i = torch.arange(n, device=g.device)[:, None]
    j = torch.arange(n, device=g.device)[None, :]
    in_window = ((i - j) <= window).to(g.dtype)
    mask = g[..., None, :] + l[..., None, :] * still_open + s[..., None, :] * in_window
    return mask * (j <= i).to(g.dtype)


def masked_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The attention matrix [..., N, M] under a 0/1 or soft mask: w_ij = M_ij·e^{s_ij} / Σ_j' M_ij'·e^{s_ij'}
    with s = q·kᵀ/√m (m the head width), the scores of scaled dot product attention."""
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q, k: widths differ ({q.shape[-1]} vs {k.shape[-1]}); both must be d")
    if mask.shape[-2:] != (q.shape[-2], k.shape[-2]):
        raise ValueError(f"mask: expected [..., {q.shape[-2]}, {k.shape[-2]}], got {tuple(mask.shape)}")
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores - scores.amax(dim=-1, keepdim=True).detach()  # stable; the diagonal is always visible
    weights = mask.to(scores.dtype) * scores.exp()
    return weights / weights.sum(dim=-1, keepdim=True)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√m) restricted by a 0/1 or soft mask: o_i = Σ_j M_ij·e^{s_ij}·v_j / Σ_j M_ij·e^{s_ij}."""
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"k, v: expected matching [..., M], got {tuple(k.shape)} and {tuple(v.shape)}")
    return masked_weights(q, k, mask) @ v


@dataclass(frozen=True)
class NatsAttention:
    """NAtS masking as an attention kind (`fastattn_lib.attention`'s interface, plus the roles):

        attention(q, k, v, roles=one_hot) = masked_attention(q, k, v, soft_mask(one_hot, W, C))

    with W = `window`, the lifetime of a SLIDING token, C = `chunk`, and `one_hot` [..., N, 3] the roles of
    the N tokens, alike inside each chunk (a model's `RoleScorer` supplies them: `reads_roles`). The mask
    is causal by construction, so `causal` must stay True. The weights are differentiable in the one-hots,
    which is how the scorer learns."""

    window: int
    chunk: int = 1  # C: tokens that share one role (the scorer reads their mean hidden state)
    reads_roles: ClassVar[bool] = True  # a model block passes its scorer's roles as `roles=`

    def __post_init__(self):
        check_window(self.window)
        check_count("chunk", self.chunk)

    def mask(self, roles, causal: bool = True) -> torch.Tensor:
        """soft_mask(roles, W, C) [..., N, N], after checking the call."""
        if causal is not True:
            raise ValueError(
                f"causal: NAtS attention is causal (roles evict keys as queries advance), got {causal!r}"
            )
        if roles is None:
            raise ValueError(
                "roles: NAtS attention needs the tokens' one-hot roles [..., N, 3] "
                "(in a model: ModelConfig(role_scorer=True))"
            )
        return soft_mask(roles, self.window, self.chunk)

    def __call__(self, q, k, v, causal: bool = True, roles=None) -> torch.Tensor:
        return masked_attention(q, k, v, self.mask(roles, causal))

    def weights(self, q, k, causal: bool = True, roles=None) -> torch.Tensor:
        return masked_weights(q, k, self.mask(roles, causal))


# ----------------------------------------------------------------------------------------------------
# Learning the roles
# ----------------------------------------------------------------------------------------------------


def chunk_means(h: torch.Tensor, chunk: int) -> torch.Tensor:
    """The mean of each chunk of `chunk` consecutive rows of h [B, N, m]: [B, ⌈N/C⌉, m] (a shorter last
    chunk is the mean of the rows it has). For C = 1 this is h."""
    batch, n, width = h.shape
    n_chunks = -(-n // chunk)
    sums = F.pad(h, (0, 0, 0, n_chunks * chunk - n)).view(batch, n_chunks, chunk, width).sum(dim=2)
    counts = (n - chunk * torch.arange(n_chunks, device=h.device)).clamp(max=chunk)
    return sums / counts[:, None].to(h.dtype)  # (B, N_c, m)


class RoleScorer(nn.Module):
    """The attention score layer: a bias-free Linear(d_model → 3·n_heads) on the detached hidden state.

    `forward(h, chunk)` returns one-hot roles [B, H, N, 3]: one role per chunk of C = `chunk` tokens, from
    the chunk's mean hidden state (each token its own chunk when C = 1); hard straight-through
    Gumbel-softmax (τ = 1) in training mode, arg-max in eval mode; the first chunk is always GLOBAL.
    Zero-initialised, so training starts from uniform role probabilities. `step_role` is the same scorer
    while decoding, one token at a time.
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        check_count("d_model", d_model)
        check_count("n_heads", n_heads)
        self.n_heads = n_heads
        self.proj = nn.Linear(d_model, 3 * n_heads, bias=False)
        nn.init.zeros_(self.proj.weight)

    def logits(self, h: torch.Tensor, chunk: int = 1) -> torch.Tensor:
        """The role logits of each chunk of h [B, N, m]: [B, H, N_c, 3]."""
        # detached: the scorer learns only through the mask, never pushes into the residual stream
        pooled = chunk_means(h.detach(), chunk)  # (B, N_c, m)
        return self.proj(pooled).view(*pooled.shape[:2], self.n_heads, 3).transpose(1, 2)  # (B, H, N_c, 3)

    def forward(self, h: torch.Tensor, chunk: int = 1) -> torch.Tensor:
        check_count("chunk", chunk)
        logits = self.logits(h, chunk)
        if self.training:
            one_hot = F.gumbel_softmax(logits, tau=1.0, hard=True)
        else:
            one_hot = F.one_hot(logits.argmax(-1), 3).to(logits.dtype)
        first = F.one_hot(torch.tensor(GLOBAL, device=h.device), 3).to(one_hot.dtype)
        one_hot = torch.cat([first.expand_as(one_hot[..., :1, :]), one_hot[..., 1:, :]], dim=-2)
        return one_hot.repeat_interleave(chunk, dim=-2)[..., : h.shape[1], :]  # (B, H, N, 3)

    def roles(self, h: torch.Tensor, chunk: int = 1) -> torch.Tensor:
        """Integer roles [B, H, N] (arg-max, the first chunk GLOBAL) whatever the module's mode."""
        roles = self.logits(h, chunk).argmax(-1)
        roles[..., 0] = GLOBAL
        return roles.repeat_interleave(chunk, dim=-1)[..., : h.shape[1]]

    def step_role(self, x: torch.Tensor, t: int, chunk: int, cache: KVCache):
        """While decoding: the hidden state x [B, 1, m] of token t joins `cache.scorer_inputs`; when t ends
        its chunk, returns the chunk's role [B, H] (arg-max of the scores of the chunk's mean, GLOBAL for the
        first chunk) and empties the inputs, else None (the role is not known yet)."""
        cache.scorer_inputs.append(x)
        if (t + 1) % chunk:
            return None
        roles = self.logits(torch.cat(cache.scorer_inputs, dim=1), chunk).argmax(-1)[..., 0]  # (B, H)
        cache.scorer_inputs = []
        return torch.full_like(roles, GLOBAL) if t < chunk else roles


def sparsity_loss(one_hot: torch.Tensor, sparsity_weight: float, chunk: int = 1) -> torch.Tensor:
    """λ × the share of the causal mask held by GLOBAL and LOCAL tokens, averaged over leading dims.

    Σ_ij (g_j + l_j·∏(1 − g_c)) / (N(N+1)/2): 1 when every token stays to the end, → 0 as tokens become
    SLIDING (whose window is not penalised: its cost is bounded by W, nor is a token's own chunk)."""
    check_nonnegative_number("sparsity_weight", sparsity_weight)
    check_chunk_roles("one_hot", one_hot, chunk)
    n = one_hot.shape[-2]
    without_window = one_hot * torch.tensor([1.0, 1.0, 0.0], dtype=one_hot.dtype, device=one_hot.device)
    held = role_mask(without_window, 0, chunk).sum(dim=(-1, -2))
    return sparsity_weight * (held / (n * (n + 1) / 2)).mean()
