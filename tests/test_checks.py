"""The shared argument checks: one non-finite entry anywhere is found, empty tensors pass."""

import pytest
import torch

from fastattn_lib.checks import check_finite_floats


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
