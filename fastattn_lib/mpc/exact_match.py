"""Exact-match attention built from ANNA: every query averages exactly the keys that carry its own code.

This is how an ANNA layer can route a word to one chosen token, the move every construction in
`transformers` is made of. Give every symbol (a machine, a position, a value) a random unit code vector;
equal codes always share a bucket, so ANNA's mean over the query's bucket includes every key with the
query's code. It is exact-match attention once no two different codes share a bucket in any table, and
since the code book is finite that is checked, not hoped for (`ExactMatchCodes.false_collision_pairs`).
`NULL` (−1) is the index of "no code": a query that finds nothing, a key that nobody finds.
"""

from __future__ import annotations

import torch
from torch import nn

from ..attention import anna_attention
from ..checks import check_count
from ..device import cpu_generator
from ..lsh import LSHTables

NULL = -1  # an index meaning "no code": a query that should find nothing, a key nobody should find


class ExactMatchCodes:
    """Code vectors for `n_codes` symbols, and LSH tables under which ANNA is exact-match attention.

    Symbol c is the random unit vector e_c ∈ R^dim; two extra codes stand for a null query and a null key.
    A query and a key with the same code always share a bucket in all ℓ tables (equal vectors hash equally),
    so with no false collisions ANNA returns exactly the mean value of the keys whose code equals the query's:
    exact-match attention, for any ℓ ≥ 1. Distinct codes may still collide by
    chance (probability about (1/2·dim)^z per table for cross-polytope), and a false collision mixes a wrong
    value into the mean. The code book is finite, so this is checked, not hoped for: `false_collision_pairs`
    counts pairs of distinct codes that share a bucket in some table. With `n_hashes=None` the smallest z
    with none is chosen, and then ANNA is exact for every input, deterministically.
    """

    def __init__(
        self,
        n_codes: int,
        n_tables: int = 1,
        n_hashes: int | None = None,
        family: str = "cross_polytope",
        seed: int = 0,
        dim: int = 32,
    ):
        check_count("n_codes", n_codes)
        check_count("n_tables", n_tables)
        check_count("dim", dim, minimum=2)
        generator = cpu_generator(seed, "exact-match-codes")
        # float64 throughout: the buckets checked here are the buckets `attend` uses, and words stay exact
        draws = torch.randn(n_codes + 2, dim, generator=generator, dtype=torch.float64)
        self.vectors = nn.functional.normalize(draws, dim=-1)
        self.n_codes, self.n_tables, self.family, self.seed = n_codes, n_tables, family, seed
        auto = n_hashes is None
        n_hashes = 1 if auto else n_hashes
        check_count("n_hashes", n_hashes)
        pairs = self._false_pairs(n_hashes)
        while auto and pairs:
            n_hashes += 1  # terminates: (2·dim)^z buckets soon exceed any code book's birthday bound
            pairs = self._false_pairs(n_hashes)
        self.n_hashes, self.false_collision_pairs = n_hashes, pairs

    def _shared(self, n_tables: int, n_hashes: int, seed: int) -> torch.Tensor:
        """(ℓ, P) booleans: whether each of the P pairs of distinct codes shares a bucket in each table."""
        tables = LSHTables(self.vectors.shape[1], n_tables, n_hashes, self.family, seed, device="cpu")
        ids = tables.bucket_ids(self.vectors)  # (ℓ, n_codes + 2)
        first, second = torch.triu_indices(len(self.vectors), len(self.vectors), offset=1)
        return ids[:, first] == ids[:, second]

    def _false_pairs(self, n_hashes: int) -> int:
        """Pairs of distinct codes that share a bucket in at least one of the ℓ tables."""
        return int(self._shared(self.n_tables, n_hashes, self.seed).any(dim=0).sum())

    def pair_collision_rate(self, n_draws: int = 64) -> float:
        """The chance that one hash function (a table with z = 1) puts two distinct codes of this book in one
        bucket: the share of pairs that collide, averaged over `n_draws` independently drawn functions.
        About 1/(2·dim) for exactly orthogonal codes; random codes are only nearly orthogonal, and the
        collision probability is convex in their angle, so a little more."""
        check_count("n_draws", n_draws)
        return self._shared(n_draws, 1, self.seed + 1).float().mean().item()

    def encode(self, index: torch.Tensor, null: int) -> torch.Tensor:
        """Code vectors for integer indices [...] → [..., dim]; NULL (−1) becomes code `null`."""
        if index.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"index: expected an integer tensor, got {index.dtype}")
        if ((index < NULL) | (index >= self.n_codes)).any():
            raise ValueError(f"index: expected values in -1..{self.n_codes - 1}")
        vectors = self.vectors.to(index.device)
        return vectors[torch.where(index == NULL, null, index)]

    def attend(self, query: torch.Tensor, key: torch.Tensor, values: torch.Tensor, causal: bool = False):
        """ANNA with query codes `query` [..., N] and key codes `key` [..., N]: the mean of `values`
        [..., N, d] over the keys whose code equals the query's (0 where there is none), in float64."""
        q, k = self.encode(query, self.n_codes), self.encode(key, self.n_codes + 1)
        v = values.to(torch.float64)
        return anna_attention(q, k, v, self.n_tables, self.n_hashes, self.family, self.seed, causal)
