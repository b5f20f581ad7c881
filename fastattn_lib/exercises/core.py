"""What an exercise is, and the small judges the notebooks' exercises share.

An `Exercise` holds its one-line prompt, the notebook it belongs to, how to judge an answer, the hint, a
reference solution and answers that must be rejected (the tests run both). `close_to` and `equals` build the
judges of "predict a number" and "find a setting" exercises, and `same_output` compares what a reader's
function returns with the right output. A judge returns True for a right answer; it raises WrongAnswer when it
can say what is wrong (`check` shows the reason with the hint), and any other exception from a reader's
function becomes the hint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch


@dataclass(frozen=True)
class Exercise:
    notebook: str
    prompt: str
    hint: str
    judge: Callable[[object], bool]  # True when the answer is right; may raise on a malformed answer
    solution: Callable[[], object]  # a reference answer
    wrong: tuple = field(default_factory=tuple)  # answers that must be rejected


class WrongAnswer(Exception):
    """Raised by a judge that can say what is wrong with an answer; `check` shows why, then the hint."""


def as_number(answer) -> int | float:
    """A reader's number as a plain Python number: an int or float, a numpy scalar or a one-element tensor
    (never a bool, whose True would pass for 1). Anything else is a WrongAnswer that names what was given."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1 and answer.dtype != torch.bool:
        answer = answer.item()
    elif isinstance(answer, np.generic):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise WrongAnswer(f"expected a number, got the {type(answer).__name__} {answer!r}")
    return answer


def close_to(expected: float, tolerance: float) -> Callable[[object], bool]:
    """Judge of a predicted number: right within `tolerance`."""

    def judge(answer) -> bool:
        return abs(as_number(answer) - expected) <= tolerance

    return judge


def equals(expected: int) -> Callable[[object], bool]:
    """Judge of an exact integer answer: a number equal to it, in any numeric type (5, 5.0, np.int64(5))."""

    def judge(answer) -> bool:
        return as_number(answer) == expected

    return judge


def same_output(got, expected: torch.Tensor, inputs: str) -> None:
    """Compare what a reader's function returned on `inputs` (described in words) with the integer-valued
    `expected`; raise WrongAnswer saying how it differs: None, not array-like, the shape, or the first entry
    that differs. A list or array is taken as a tensor."""
    if got is None:
        raise WrongAnswer(f"on {inputs} your function returned None (is a `return` missing?)")
    try:
        got = torch.as_tensor(got)
    except (TypeError, ValueError, RuntimeError):
        raise WrongAnswer(
            f"on {inputs} your function returned a {type(got).__name__}, not a tensor"
        ) from None
    if got.shape != expected.shape:
        raise WrongAnswer(
            f"on {inputs} your function returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        )
    differ = (got.to(torch.float64) != expected.to(torch.float64)).nonzero()
    if len(differ):
        at = tuple(differ[0].tolist())
        raise WrongAnswer(
            f"on {inputs}, {len(differ)} of {expected.numel()} entries differ: at index {at} your function "
            f"gave {got[at].item()} where {expected[at].item()} is right"
        )


def require_function(answer) -> None:
    if not callable(answer):
        raise WrongAnswer(f"expected a function, got the {type(answer).__name__} {answer!r}")


def computed(
    make_judge: Callable[..., Callable], compute: Callable[[], object], *args
) -> Callable[[object], bool]:
    """A judge whose expected value the library has to compute: `make_judge(compute(), *args)`, built when an
    answer is first judged (not when the notebook imports the exercises), and once."""
    judge = cache(lambda: make_judge(compute(), *args))
    return lambda answer: judge()(answer)
