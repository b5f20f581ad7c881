"""Reformer-style attention with constant-size buckets, and why it needs depth where ANNA does not.

Reformer (Kitaev, Kaiser, Levskaya 2020) hashes shared query-keys x̂ with one LSH table, sorts the tokens by
(bucket, position) and cuts the sorted sequence into chunks of a fixed size B; each token attends only to
same-bucket tokens in its own chunk and the one before. That bounds the work per token by 2·B, and it also
bounds what one output can depend on: at most 2·B inputs per layer, so at most (2·B)^L after L layers, and a
global average over N tokens needs ⌈log_{2B} N⌉ layers. ANNA's buckets have no size limit: one layer whose
queries and keys all coincide already averages every token.

* `chunked_bucket_attention`: the layer itself;
* `layers_for_global_average`: the depth bound ⌈log_span N⌉;
* `receptive_fields`: the measured number of inputs an output depends on, layer after layer, for both.

Sliding windows have the same cap in another shape: with window W (query i sees keys i − W ≤ j ≤ i) an
output reaches W positions further back per layer. k-hop induction heads ask position i for the symbol at
find^k(i), which lies further back the larger k is, so a window needs depth that grows linearly with k,
where the hand-built ANNA-transformer (`mpc.build_khop_transformer`) needs ⌈log₂ k⌉ + O(1) layers.

* `window_pattern`, `compose`: the window's dependency pattern, and one more layer of dependence;
* `khop_sources`: the position find^k(i) each k-hop answer is read from;
* `khop_window_depth`: the fewest window layers after which every answer's source is within reach.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .attention import anna_attention
from .checks import check_count, check_qkv
from .device import cpu_generator
from .lsh import LSHTables
from .tasks import find_pointers


def chunked_bucket_attention(
    x, v, bucket_size: int, n_hashes: int = 1, family="cross_polytope", seed: int = 0
) -> torch.Tensor:
    """Each token averages the values of the same-bucket tokens in its chunk and the previous chunk.

    x [..., N, m] are the shared query-keys, v [..., N, d_v] the values; N must be a multiple of
    `bucket_size`. One table of z = `n_hashes` hashes. Every token sees at least itself. Returns
    [..., N, d_v].
    """
    check_qkv(x, x, v, causal=False)
    n = x.shape[-2]
    check_count("bucket_size", bucket_size)
    if n % bucket_size:
        raise ValueError(f"bucket_size: expected a positive divisor of N={n}, got {bucket_size!r}")
    tables = LSHTables(x.shape[-1], 1, n_hashes, family, seed=seed, device=x.device)
    ids = tables.bucket_ids(F.normalize(x, dim=-1).reshape(-1, n, x.shape[-1]))[0]  # (B, N)
    positions = torch.arange(n, device=x.device)
    order = (ids * n + positions).argsort(dim=-1)  # (B, N): sorted by bucket, then position
    sorted_ids = ids.gather(-1, order)
    sorted_v = v.reshape(-1, n, v.shape[-1]).gather(1, order.unsqueeze(-1).expand(-1, -1, v.shape[-1]))
    chunks = n // bucket_size
    chunk_ids = sorted_ids.view(-1, chunks, bucket_size)  # (B, C, b)
    chunk_v = sorted_v.view(-1, chunks, bucket_size, v.shape[-1])  # (B, C, b, d_v)
    look_ids = torch.cat([chunk_ids.roll(1, dims=1), chunk_ids], dim=-1)  # (B, C, 2b): previous chunk + own
    look_v = torch.cat([chunk_v.roll(1, dims=1), chunk_v], dim=-2)
    look_ids[:, 0, :bucket_size] = -1  # the first chunk has no previous one (roll wrapped the last around)
    same = (chunk_ids.unsqueeze(-1) == look_ids.unsqueeze(-2)).to(v.dtype)  # (B, C, b, 2b)
    out_sorted = (same @ look_v) / same.sum(-1, keepdim=True)
    out = torch.empty_like(sorted_v).scatter_(
        1, order.unsqueeze(-1).expand_as(sorted_v), out_sorted.flatten(1, 2)
    )
    return out.reshape(v.shape)


def layers_for_global_average(n: int, span: int) -> int:
    """Layers an attention whose outputs each see at most `span` inputs needs before one output can
    depend on all n inputs: ⌈log_span n⌉ (one for ANNA, whose bucket can hold all n keys)."""
    check_count("n", n)
    check_count("span", span, minimum=2)
    return max(1, math.ceil(math.log(n) / math.log(span) - 1e-12))


def receptive_fields(n: int, bucket_size: int, n_layers: int, dim: int = 16, seed: int = 0) -> dict:
    """How many inputs the best-connected output depends on after 1..n_layers layers.

    Reformer: `chunked_bucket_attention` on random shared query-keys (fresh ones per layer); its weight matrix
    A is read off by attending over the identity (out = A·I), and dependence composes as the boolean product
    of the layers' patterns. ANNA: one layer whose queries and keys are all equal already depends on all N
    (the global average). Returns {"reformer", "reformer_bound", "anna"}, lists over layers.
    """
    check_count("n", n, minimum=2)
    check_count("n_layers", n_layers)
    identity = torch.eye(n)
    generator = cpu_generator(seed, "receptive-field")
    depends, reformer = torch.eye(n), []
    for layer in range(n_layers):
        x = torch.randn(n, dim, generator=generator)
        pattern = (chunked_bucket_attention(x, identity, bucket_size, seed=seed + layer) != 0).float()
        depends = ((pattern @ depends) > 0).float()
        reformer.append(int(depends.sum(dim=1).max()))
    same = torch.ones(n, dim)
    anna_pattern = anna_attention(same, same, identity, n_tables=1, n_hashes=1) != 0
    anna = [int(anna_pattern.sum(dim=1).max())] * n_layers
    bound = [min(n, (2 * bucket_size) ** (layer + 1)) for layer in range(n_layers)]
    return {"reformer": reformer, "reformer_bound": bound, "anna": anna}


# ---- sliding windows against k-hop ---------------------------------------------------------------------


def window_pattern(n: int, window: int) -> torch.Tensor:
    """(N, N) bool: output i of one causal sliding-window layer depends on input j when i − W ≤ j ≤ i."""
    check_count("n", n)
    check_count("window", window)
    offset = torch.arange(n)[:, None] - torch.arange(n)[None, :]  # i − j
    return (offset >= 0) & (offset <= window)


def compose(depends: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """One more layer: output i depends on input j when it depends on some position that depends on j."""
    return (depends.float() @ pattern.float()) > 0


def khop_sources(x: torch.Tensor, alphabet: int, hops: int) -> torch.Tensor:
    """find^k(i) for sequences x [n, N]: the position the k-hop answer at i is read from, −1 where some
    step of the chain is undefined (the answer is "none")."""
    check_count("hops", hops)
    pointers = find_pointers(x, alphabet)
    position = torch.arange(x.shape[1]).expand_as(x)
    for _ in range(hops):  # a loop over hops, vectorised over samples and positions
        position = torch.where(position >= 0, pointers.gather(1, position.clamp(min=0)), -1)
    return position


def khop_window_depth(x: torch.Tensor, alphabet: int, hops_list, window: int) -> list[int]:
    """For each k in `hops_list`: the fewest causal sliding-window layers (window W) after which every
    position i of every sequence in x [n, N] whose k-hop answer is defined depends on its source
    find^k(i): a depth no window-attention transformer can go below on these inputs. Measured: the
    window's dependency pattern is composed layer by layer (`compose`) until every source is in reach."""
    check_count("window", window)
    hops_list = list(hops_list)
    n = x.shape[1]
    position = torch.arange(n).expand_as(x)
    pairs = []  # per k: the (output, source) positions that must be connected
    for hops in hops_list:
        source = khop_sources(x, alphabet, hops)
        defined = source >= 0
        pairs.append((position[defined], source[defined]))
    outputs = torch.cat([o for o, _ in pairs])
    sources = torch.cat([s for _, s in pairs])
    pattern = window_pattern(n, window)
    depends, first, layer = pattern, pattern.long(), 1  # first[i, j]: the first layer with i depending on j
    while not bool(first[outputs, sources].all()):  # ends by layer N/W: by then every j ≤ i is in reach
        depends, layer = compose(depends, pattern), layer + 1
        first = torch.where((first == 0) & depends, layer, first)
    return [int(first[o, s].max()) if len(o) else 0 for o, s in pairs]
