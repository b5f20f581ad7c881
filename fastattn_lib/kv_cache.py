"""Decoding token by token through a KV cache that evicts, and the policies that decide what it keeps.

A `KVCache` holds, per (batch, head), the keys and values of the tokens still visible to some later query,
with their positions, their NAtS roles and the attention each has received (H2O's score). One decoding step
(`cache_step`) appends the new token's K/V, lets the new query attend over what the cache holds, then asks a
policy which entries to keep. Policies are small objects behind one interface, `keep(cache, t)`, in the
manner of kvpress's presses:

* `FullCache`: keep everything (dense attention);
* `NAtSPolicy(W)`: evict by role: a new GLOBAL token frees every LOCAL before it; a SLIDING entry leaves
  after W queries. Decoding with it reproduces attention masked by `nats.nats_mask` exactly
  (`decode_with_cache`);
* `SlidingWindowWithSinks(budget)`: StreamingLLM: the first tokens (sinks) and the most recent ones;
* `HeavyHitters(budget)`: H2O: the most recent tokens and the older ones with the most attention so far.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .checks import (
    GLOBAL,
    LOCAL,
    SLIDING,
    check_budget,
    check_chunk_roles,
    check_count,
    check_roles,
    check_window,
)


class KVCache:
    """A per-(batch, head) KV cache for token-by-token decoding: keys, values, their positions and roles,
    and the attention each entry has received so far (for H2O). Storage is compacted after every eviction,
    so its length is the largest number of entries any head still holds.

    With NAtS chunks, the entries of the chunk still being read are `pending`: held as GLOBAL until the
    chunk's role is known; `scorer_inputs` keeps their hidden states for the scorer."""

    def __init__(self, batch_shape: tuple, d_key: int, d_value: int, dtype, device):
        self.keys = torch.zeros(*batch_shape, 0, d_key, dtype=dtype, device=device)
        self.values = torch.zeros(*batch_shape, 0, d_value, dtype=dtype, device=device)
        self.positions = torch.zeros(*batch_shape, 0, dtype=torch.long, device=device)
        self.roles = torch.zeros(*batch_shape, 0, dtype=torch.long, device=device)
        self.received = torch.zeros(*batch_shape, 0, dtype=dtype, device=device)
        self.valid = torch.zeros(*batch_shape, 0, dtype=torch.bool, device=device)
        self.pending = torch.zeros(*batch_shape, 0, dtype=torch.bool, device=device)
        self.scorer_inputs: list[torch.Tensor] = []

    def append(self, key, value, position: int, role) -> None:
        """Add one token per (batch, head): key [..., d], value [..., d_v], role [...]. A role of None
        means "not known yet": the entry is held as a pending GLOBAL. A known role is also given to every
        pending entry (the token ends its chunk, whose role it carries)."""
        pending = role is None
        if pending:
            role = self.positions.new_full(self.positions.shape[:-1], GLOBAL)
        else:
            self.roles = torch.where(self.pending, role[..., None], self.roles)
            self.pending = torch.zeros_like(self.pending)
        self.keys = torch.cat([self.keys, key[..., None, :]], dim=-2)
        self.values = torch.cat([self.values, value[..., None, :]], dim=-2)
        self.positions = F.pad(self.positions, (0, 1), value=position)
        self.roles = torch.cat([self.roles, role[..., None]], dim=-1)
        self.received = F.pad(self.received, (0, 1))
        self.valid = F.pad(self.valid, (0, 1), value=True)
        self.pending = F.pad(self.pending, (0, 1), value=pending)

    def attend(self, query: torch.Tensor) -> torch.Tensor:
        """Softmax attention of one query per (batch, head), [..., d], over the valid entries."""
        scores = (self.keys @ query[..., :, None])[..., 0] / math.sqrt(query.shape[-1])  # (..., C)
        weights = scores.masked_fill(~self.valid, float("-inf")).softmax(dim=-1)
        self.received = self.received + weights
        return (weights[..., None, :] @ self.values)[..., 0, :]

    def keep(self, keep: torch.Tensor) -> None:
        """Evict every entry where `keep` is False, then compact the storage."""
        self.valid = self.valid & keep
        order = torch.sort((~self.valid).to(torch.int8), dim=-1, stable=True).indices  # valid entries first
        length = int(self.valid.sum(dim=-1).max()) if self.valid.numel() else 0
        order = order[..., :length]
        for name in ("positions", "roles", "received", "valid", "pending"):
            setattr(self, name, getattr(self, name).gather(-1, order))
        for name in ("keys", "values"):
            tensor = getattr(self, name)
            setattr(self, name, tensor.gather(-2, order[..., None].expand(*order.shape, tensor.shape[-1])))

    def sizes(self) -> torch.Tensor:
        return self.valid.sum(dim=-1)


class EvictionPolicy:
    """Decides, after each decoding step t, which cache entries to keep (kvpress-style: one small object
    per policy behind one interface). `keep(cache, t)` returns a bool tensor shaped like `cache.valid`.

    A policy's size knob (NAtS's W, a baseline's budget) is one integer, or a list with one per sequence
    of the batch: decoding B·S sequences at S settings in one batch costs little more than decoding B,
    because a step is a few small tensor operations whatever the batch."""

    name = "policy"

    def keep(self, cache: KVCache, t: int) -> torch.Tensor:
        raise NotImplementedError


def per_sequence(name: str, value, check) -> int | torch.Tensor:
    """A size knob as given (an int, checked by `check`) or, for a list with one value per sequence, a
    tensor [B, 1, 1] that broadcasts against the cache's [B, H, C] entries."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name}: expected an integer or a non-empty list of integers, got {value!r}")
        for item in value:
            check(item)
        return torch.tensor(value).view(-1, 1, 1)
    check(value)
    return value


def _on(value, cache: KVCache):
    """A per-sequence knob on the cache's device (an int passes through)."""
    return value.to(cache.positions.device) if isinstance(value, torch.Tensor) else value


class FullCache(EvictionPolicy):
    """Keep everything: dense attention."""

    name = "full cache"

    def keep(self, cache, t):
        return torch.ones_like(cache.valid)


class NAtSPolicy(EvictionPolicy):
    """Evict by role: a new GLOBAL frees every LOCAL before it (their span ends at it); a SLIDING entry leaves
    once W queries after it have seen it. Pending entries (a chunk whose role is not known yet) stay; a
    chunk found GLOBAL frees the LOCALs before it once its last token has been read."""

    name = "NAtS"

    def __init__(self, window: int | list[int]):
        self.window = per_sequence("window", window, check_window)

    def keep(self, cache, t):
        newest = (cache.positions == t).long().argmax(-1, keepdim=True)
        newest_role = cache.roles.gather(-1, newest).masked_fill(cache.pending.gather(-1, newest), -1)
        closed = (cache.roles == LOCAL) & (cache.positions < t) & (newest_role == GLOBAL)
        expired = (cache.roles == SLIDING) & (t + 1 - cache.positions > _on(self.window, cache))
        return ~(closed | expired)


class SlidingWindowWithSinks(EvictionPolicy):
    """StreamingLLM: the first `n_sinks` tokens plus the most recent ones, `budget` entries in all."""

    name = "sliding window + sinks"

    def __init__(self, budget: int | list[int], n_sinks: int = 1):
        check_count("n_sinks", n_sinks, minimum=0)

        def check(value):
            check_budget(value)
            if n_sinks >= value:
                raise ValueError(f"n_sinks: expected fewer than budget={value} sinks, got {n_sinks}")

        self.budget, self.n_sinks = per_sequence("budget", budget, check), n_sinks

    def keep(self, cache, t):
        recent = t + 1 - (_on(self.budget, cache) - self.n_sinks)
        return (cache.positions < self.n_sinks) | (cache.positions >= recent)


class HeavyHitters(EvictionPolicy):
    """H2O: the `budget − budget // 2` most recent tokens plus the `budget // 2` older ones that have received
    the most attention so far."""

    name = "H2O"

    def __init__(self, budget: int | list[int]):
        self.budget = per_sequence("budget", budget, check_budget)

    def keep(self, cache, t):
        budget = _on(self.budget, cache)
        n_heavy = budget // 2
        recent = cache.positions >= t + 1 - (budget - n_heavy)
        candidates = cache.valid & ~recent
        most = int(n_heavy if isinstance(n_heavy, int) else n_heavy.max())
        if most == 0 or not candidates.any():
            return recent
        score = cache.received.masked_fill(~candidates, float("-inf"))
        top = score.topk(min(most, score.shape[-1]), dim=-1).indices  # the heaviest first
        ranked = torch.arange(top.shape[-1], device=top.device) < n_heavy  # each sequence's own n_heavy
        heavy = torch.zeros_like(recent).scatter(-1, top, ranked.expand_as(top)) & candidates
        return recent | heavy


def cache_step(cache: KVCache, policy: EvictionPolicy, q, k, v, t: int, role) -> torch.Tensor:
    """One decoding step at position t, for one token per (batch, head): its key k [..., d], value
    v [..., d_v] and role [...] (None while its chunk is incomplete: `KVCache.append`) join the cache, its
    query q [..., d] attends over what the cache holds, then `policy` evicts. Returns the attention output
    [..., d_v]. Every decoder (`decode` here, a model's `TinyTransformer.decode` and `generate`) runs its
    caches through this one step."""
    cache.append(k, v, t, role)
    out = cache.attend(q)
    cache.keep(policy.keep(cache, t))
    return out


def decode(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, policy: EvictionPolicy, roles=None, chunk: int = 1
):
    """Token-by-token attention through a `KVCache` managed by `policy`.

    q, k [..., N, d], v [..., N, d_v]; `roles` [..., N] (stored with each entry; NAtS needs them), alike
    inside each chunk of `chunk` tokens and revealed to the cache only at a chunk's last token.
    Each step is `cache_step`: the token's K/V join the cache, query t attends over what the cache holds,
    then the policy evicts. Returns (out [..., N, d_v], cache_sizes [..., N]: entries held after each
    step)."""
    if q.shape != k.shape or k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"q, k, v: expected [..., N, d] and v [..., N, d_v], got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    n = q.shape[-2]
    if roles is None:
        roles = torch.full(q.shape[:-1], SLIDING, dtype=torch.long, device=q.device)
    check_roles(roles)
    if roles.shape != q.shape[:-1]:
        raise ValueError(
            f"roles: expected shape {tuple(q.shape[:-1])} (one per token), got {tuple(roles.shape)}"
        )
    check_chunk_roles("roles", roles, chunk)
    cache = KVCache(q.shape[:-2], k.shape[-1], v.shape[-1], v.dtype, v.device)
    outputs, sizes = [], []
    for t in range(n):
        role = roles[..., t] if (t + 1) % chunk == 0 else None
        outputs.append(cache_step(cache, policy, q[..., t, :], k[..., t, :], v[..., t, :], t, role))
        sizes.append(cache.sizes())
    return torch.stack(outputs, dim=-2), torch.stack(sizes, dim=-1)


def decode_with_cache(q, k, v, roles, window: int, chunk: int = 1):
    """NAtS decoding: `decode` with role-based eviction. `out` equals `masked_attention(q, k, v,
    nats_mask(roles, window, chunk))` and `cache_sizes[t]` is the number of keys some query after t still
    sees."""
    return decode(q, k, v, NAtSPolicy(window), roles, chunk)
