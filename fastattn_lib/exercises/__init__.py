"""Reader exercises with checked answers, and the one-line claims the notebooks assert.

Each notebook poses a few exercises: a cell tagged `exercise` where the reader writes an answer (a number to
predict, a function to write, a setting to find), a cell tagged `solution` (collapsed in the rendered book;
the committed notebook runs it, so the tests execute every check), and `check(name, answer)`, which prints a
confirmation or raises AssertionError with a hint, and with what is wrong where the check can tell (a string
where a number belongs, a function that returns None, the first output entry that differs). A number counts
in any numeric type; a missing answer gets the question again, without the hint; an answer that crashes gets
the hint, never a traceback from deep inside the library.

`EXERCISES` maps a name to an `Exercise` (see `core`); each notebook's exercises live in the module of its
topic: `lsh` (01), `anna` (02), `mpc` (03), `training` (04), `nats` (05).

`claim(words, condition)` is how a notebook asserts what it teaches: one readable line per claim.
"""

from __future__ import annotations

from . import anna, lsh, mpc, nats, training
from .core import Exercise, WrongAnswer

EXERCISES: dict[str, Exercise] = {
    **lsh.EXERCISES,
    **anna.EXERCISES,
    **mpc.EXERCISES,
    **training.EXERCISES,
    **nats.EXERCISES,
}


def claim(words: str, condition) -> None:
    """Assert one thing the notebook teaches; fail with the claim in words when it stops being true."""
    if not bool(condition):
        raise AssertionError(f"the notebook claims: {words} — and that no longer holds")


def check(name: str, answer) -> None:
    """Judge the reader's answer to exercise `name`: print a confirmation, or raise AssertionError with the
    exercise's hint (also for a missing, ill-typed or crashing answer)."""
    if name not in EXERCISES:
        raise ValueError(f"name: expected one of {sorted(EXERCISES)}, got {name!r}")
    exercise = EXERCISES[name]
    if answer is None:  # no hint yet: it would give the exercise away before the reader tries
        raise AssertionError(
            f"No answer yet: {exercise.prompt} Write it in the cell above and run this cell again."
        )
    try:
        right = exercise.judge(answer)
    except WrongAnswer as reason:
        raise AssertionError(f"Not quite: {reason}.\nHint: {exercise.hint}") from None
    except Exception as error:  # a reader's function that crashes gets the hint, not a deep traceback
        raise AssertionError(
            f"Your answer raised {type(error).__name__}: {error}\nHint: {exercise.hint}"
        ) from None
    if not right:
        raise AssertionError(f"Not quite: {answer!r} is not right.\nHint: {exercise.hint}")
    print(f"✓ {name}: right.")
