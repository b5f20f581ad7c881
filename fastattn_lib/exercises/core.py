"""What an exercise is, and the small judges the notebooks' exercises share.

An `Exercise` holds its one-line prompt, the notebook it belongs to, how to judge an answer, the hint, a
reference solution and answers that must be rejected (the tests run both). `close_to` and `equals` build the
judges of "predict a number" and "find a setting" exercises; a judge returns True for a right answer and may
raise on a malformed one (`check` turns that into the hint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache


@dataclass(frozen=True)
class Exercise:
    notebook: str
    prompt: str
    hint: str
    judge: Callable[[object], bool]  # True when the answer is right; may raise on a malformed answer
    solution: Callable[[], object]  # a reference answer
    wrong: tuple = field(default_factory=tuple)  # answers that must be rejected


def is_number(answer) -> bool:
    return isinstance(answer, (int, float)) and not isinstance(answer, bool)


def close_to(expected: float, tolerance: float) -> Callable[[object], bool]:
    """Judge of a predicted number: right within `tolerance`."""

    def judge(answer) -> bool:
        return is_number(answer) and abs(answer - expected) <= tolerance

    return judge


def equals(expected) -> Callable[[object], bool]:
    """Judge of an exact answer: an integer (never a bool or a float), a string, or a tuple of them."""

    def judge(answer) -> bool:
        if isinstance(expected, int):
            return isinstance(answer, int) and not isinstance(answer, bool) and answer == expected
        return type(answer) is type(expected) and answer == expected

    return judge


def equals_computed(compute: Callable[[], object]) -> Callable[[object], bool]:
    """`equals` for an expected answer the library has to search for: `compute()` runs when an answer is
    first judged (not when the notebook imports the exercises), and once."""
    expected = cache(compute)

    def judge(answer) -> bool:
        return equals(expected())(answer)

    return judge
