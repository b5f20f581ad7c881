"""The shared argument checks: each names its argument and says what was expected."""

import pytest
import torch

from fastattn_lib.checks import check_beta, check_finite_floats, check_table_memory, check_token_ids


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("size", [1, 17, 100_003])
def test_a_single_non_finite_entry_anywhere_is_rejected(dtype, bad, size):
    check_finite_floats("x", torch.randn(size).to(dtype))  # all finite: passes
    for position in (0, size // 2, size - 1):
        x = torch.randn(size).to(dtype)
        x[position] = bad
        with pytest.raises(ValueError, match="x: contains NaN or infinite entries"):
            check_finite_floats("x", x)


def test_empty_and_wrong_types():
    check_finite_floats("x", torch.empty(0, 3))
    with pytest.raises(ValueError, match="x: expected a floating-point tensor"):
        check_finite_floats("x", torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="x: expected a torch.Tensor"):
        check_finite_floats("x", [1.0])


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(2, 5), "x: expected an integer tensor"),
        (torch.zeros(5, dtype=torch.long), r"x: expected token ids \[batch, N ≤ 8\]"),
        (torch.zeros(2, 9, dtype=torch.long), r"x: expected token ids \[batch, N ≤ 8\]"),
        (
            torch.full((2, 5), 10),
            r"x: expected token ids in 0..9 \(vocabulary size 10\), got values in 10..10",
        ),
        (torch.full((2, 5), -3), "x: expected token ids in 0..9"),
    ],
)
def test_token_ids_name_the_argument_and_the_vocabulary(x, message):
    check_token_ids("x", torch.randint(10, (2, 8)), vocab_size=10, max_len=8)  # valid: passes
    with pytest.raises(ValueError, match=message):
        check_token_ids("x", x, vocab_size=10, max_len=8)


def test_exact_length_token_ids():
    check_token_ids("x", torch.zeros(1, 8, dtype=torch.int32), vocab_size=2, max_len=8, exact_len=True)
    with pytest.raises(ValueError, match=r"N = 8"):
        check_token_ids("x", torch.zeros(1, 7, dtype=torch.long), vocab_size=2, max_len=8, exact_len=True)


def test_table_memory_names_n_tables_and_the_bytes():
    check_table_memory(8, 1000, 100, limit=10**6)  # 800 000 bytes: fits
    with pytest.raises(ValueError, match=r"n_tables: 9 tables over 1000 rows would need .*\(900000 bytes\)"):
        check_table_memory(9, 1000, 100, limit=850_000)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_positive_numbers(value):
    with pytest.raises(ValueError, match="beta: expected a finite number > 0"):
        check_beta(value)
