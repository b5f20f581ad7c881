"""Exact-match attention through ANNA: exact once the code book has no false collisions, which is counted."""

import pytest
import torch

from fastattn_lib import mpc
from fastattn_lib.lsh import LSHTables


def test_exact_match_codes_give_exact_match_attention():
    codes = mpc.ExactMatchCodes(40, n_tables=3)
    assert codes.false_collision_pairs == 0
    generator = torch.Generator().manual_seed(0)
    query = torch.randint(-1, 40, (2, 50), generator=generator)
    key = torch.randint(-1, 40, (2, 50), generator=generator)
    values = torch.randn(2, 50, 3, generator=generator, dtype=torch.float64)
    out = codes.attend(query, key, values)
    match = ((query.unsqueeze(-1) == key.unsqueeze(-2)) & (query.unsqueeze(-1) >= 0)).double()
    expected = match @ values / match.sum(-1, keepdim=True).clamp(min=1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert match.sum() > 0 and (match.sum(-1) == 0).any()  # both cases occur


def test_too_few_hashes_leave_false_collisions_and_they_are_counted():
    assert mpc.ExactMatchCodes(200, n_tables=4, n_hashes=1).false_collision_pairs > 0
    assert mpc.ExactMatchCodes(200, n_tables=4).false_collision_pairs == 0


def test_pair_collision_rate_counts_pairs_table_by_table():
    codes = mpc.ExactMatchCodes(30, dim=8)
    tables = LSHTables(8, 16, 1, "cross_polytope", seed=codes.seed + 1, device="cpu")
    ids = tables.bucket_ids(codes.vectors).tolist()  # (16, 32): the 30 codes and the two null codes
    together = [a == b for table in ids for i, a in enumerate(table) for b in table[i + 1 :]]
    assert codes.pair_collision_rate(n_draws=16) == pytest.approx(sum(together) / len(together))
    rate = mpc.ExactMatchCodes(200, dim=32).pair_collision_rate()
    assert 1 / 64 < rate < 1.5 / 64  # a little above 1/(2·dim): random codes are only nearly orthogonal
    with pytest.raises(ValueError, match="n_draws"):
        codes.pair_collision_rate(n_draws=0)


def test_indices_outside_the_code_book_are_refused():
    codes = mpc.ExactMatchCodes(5)
    with pytest.raises(ValueError, match=r"index: expected values in -1..4"):
        codes.encode(torch.tensor([0, 5]), null=codes.n_codes)
    with pytest.raises(ValueError, match="index: expected an integer tensor"):
        codes.encode(torch.tensor([0.0]), null=codes.n_codes)
