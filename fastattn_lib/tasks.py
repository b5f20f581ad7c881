"""The two reasoning tasks of the ANNA experiments, as seeded, vectorised generators.

* **Match2** (Sanford, Hsu, Telgarsky 2023): x uniform in {0, …, |Σ|−1}^N (|Σ| the vocabulary size, also
  the modulus); y_i = 1 iff some position j has x_i + x_j ≡ 0 (mod |Σ|). As in the original definition j
  ranges over all positions, i included, so a 0 matches itself (`include_self=False` excludes j = i). With
  N = 32 and |Σ| = 37 (odd, so only 0 is its own partner) the positive rate is 1 − (36/37)^32 ≈ 0.584 with
  self-matches and 1 − (36/37)^31 ≈ 0.572 without.
* **k-hop induction heads** (Sanford, Hsu, Telgarsky 2024): x over an alphabet of size A, no token equal to
  its predecessor. find(i) = 1 + max{j < i : x_j = x_i}, the position right after the latest earlier copy
  of x_i (undefined if there is none); y_i = x[find^k(i)], or the class A ("none") when a step is undefined.
  k = 1 is the classic induction head.
"""

from __future__ import annotations

import torch

from .checks import check_count
from .device import cpu_generator


def match2_labels(x: torch.Tensor, modulus: int, include_self: bool = True) -> torch.Tensor:
    """Match2 labels of sequences x [n, N]: 1 where a partner x_j ≡ −x_i (mod `modulus`) exists, in
    O(n·(N + modulus))."""
    partner = (-x) % modulus  # (n, N): the value a match for x_i must have
    counts = torch.zeros(x.shape[0], modulus, dtype=torch.long).scatter_add_(
        1, x, torch.ones_like(x)
    )  # (n, M)
    matches = counts.gather(1, partner)  # (n, N): how many j (i included) hold the partner value
    if not include_self:
        matches = matches - (partner == x).long()  # x_i is its own partner when 2·x_i ≡ 0
    return (matches > 0).long()


def match2(n_samples: int, seq_len: int = 32, modulus: int = 37, seed: int = 0, include_self: bool = True):
    """(x, y): LongTensors [n_samples, seq_len], x uniform in {0..modulus−1}, y the Match2 labels."""
    check_count("n_samples", n_samples)
    check_count("seq_len", seq_len)
    check_count("modulus", modulus, minimum=2)
    x = torch.randint(modulus, (n_samples, seq_len), generator=cpu_generator(seed, "match2"))
    return x, match2_labels(x, modulus, include_self)


def find_pointers(x: torch.Tensor, alphabet: int) -> torch.Tensor:
    """find(i) = 1 + max{j < i : x_j = x_i} for sequences x [n, N], or −1 where no earlier copy exists."""
    n, length = x.shape
    positions = torch.arange(length).expand(n, length)
    # For every symbol a, the latest position ≤ t holding a (−1 if none), by a running maximum over t.
    holds = torch.nn.functional.one_hot(x, alphabet).bool()  # (n, N, A)
    latest = torch.where(holds, positions.unsqueeze(-1), -1).cummax(dim=1).values  # (n, N, A)
    before = torch.cat([torch.full((n, 1, alphabet), -1), latest[:, :-1]], dim=1)  # strictly before t
    previous = before.gather(2, x.unsqueeze(-1)).squeeze(-1)  # (n, N)
    return torch.where(previous >= 0, previous + 1, -1)


def khop_labels(x: torch.Tensor, alphabet: int, hops: int) -> torch.Tensor:
    """y_i = x[find^hops(i)], or `alphabet` ("none") when some step of the composition is undefined."""
    pointers = find_pointers(x, alphabet)
    position = torch.arange(x.shape[1]).expand_as(x)
    for _ in range(hops):  # a loop over hops, vectorised over samples and positions
        position = torch.where(position >= 0, pointers.gather(1, position.clamp(min=0)), -1)
    return torch.where(position >= 0, x.gather(1, position.clamp(min=0)), alphabet)


def khop(n_samples: int, seq_len: int = 100, alphabet: int = 4, hops: int = 1, seed: int = 0):
    """(x, y): LongTensors [n_samples, seq_len]; x has no token equal to its predecessor (each next token is
    uniform over the other alphabet − 1 symbols); y in {0..alphabet}, the value `alphabet` meaning "none"."""
    check_count("n_samples", n_samples)
    check_count("seq_len", seq_len)
    check_count("alphabet", alphabet, minimum=2)
    check_count("hops", hops)
    generator = cpu_generator(seed, "khop")
    first = torch.randint(alphabet, (n_samples, 1), generator=generator)
    steps = torch.randint(1, alphabet, (n_samples, seq_len - 1), generator=generator)  # never 0: no repeats
    x = (torch.cat([first, steps], dim=1).cumsum(dim=1)) % alphabet
    return x, khop_labels(x, alphabet, hops)
