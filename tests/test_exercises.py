"""Every exercise's reference solution passes its check; wrong, missing and crashing answers get the hint."""

import numpy as np
import pytest
import torch

from fastattn_lib import exercises

NAMES = sorted(exercises.EXERCISES)


@pytest.mark.parametrize("name", NAMES)
def test_the_solution_is_accepted(name, capsys):
    exercises.check(name, exercises.EXERCISES[name].solution())
    assert f"✓ {name}" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_wrong_answers_get_the_hint_and_a_missing_one_the_question_only(name):
    exercise = exercises.EXERCISES[name]
    assert None in exercise.wrong and len(exercise.wrong) >= 2
    for wrong in exercise.wrong:
        with pytest.raises(AssertionError) as caught:
            exercises.check(name, wrong)
        if wrong is None:  # the hint would give the exercise away before the reader has tried
            assert exercise.prompt in str(caught.value) and exercise.hint not in str(caught.value)
        else:
            assert "Hint: " in str(caught.value) and exercise.hint in str(caught.value)


NUMERIC = [name for name in NAMES if isinstance(exercises.EXERCISES[name].solution(), (int, float))]


@pytest.mark.parametrize("name", NUMERIC)
def test_a_right_number_counts_in_any_numeric_type(name, capsys):
    value = exercises.EXERCISES[name].solution()
    for same in (
        float(value),
        np.float32(value) if isinstance(value, int) else np.float64(value),
        torch.tensor(value),
    ):
        exercises.check(name, same)
        assert f"✓ {name}" in capsys.readouterr().out


def test_a_wrong_kind_of_answer_is_told_what_was_expected():
    with pytest.raises(AssertionError, match="expected a number, got the str '0.9'"):
        exercises.check("lsh_collision_at_60_degrees", "0.9")
    with pytest.raises(AssertionError, match="expected a number, got the bool True"):
        exercises.check("mpc_tree_rounds", True)
    with pytest.raises(AssertionError, match="expected a function, got the int 3"):
        exercises.check("lsh_hyperplane_bucket", 3)


def test_a_function_exercise_says_how_the_output_differs():
    with pytest.raises(AssertionError, match=r"returned None \(is a `return` missing\?\)"):
        exercises.check("lsh_hyperplane_bucket", lambda x, normals: None)
    with pytest.raises(AssertionError, match=r"returned shape \(50, 3\), expected \(50,\)"):
        exercises.check("lsh_hyperplane_bucket", lambda x, normals: (x @ normals > 0).long())
    with pytest.raises(
        AssertionError, match=r"entries differ: at index \(\d+,\) your function gave \d+ where \d+ is right"
    ):
        exercises.check("lsh_hyperplane_bucket", lambda x, normals: (x @ normals > 0).long().sum(-1))
    with pytest.raises(AssertionError, match=r"k = 1.*entries differ"):
        exercises.check("mpc_hop_by_doubling", lambda find, k: [p + 1 if p >= 0 else -1 for p in find])


def test_a_crashing_answer_gets_the_hint_not_its_traceback():
    with pytest.raises(AssertionError, match="(?s)Your answer raised ZeroDivisionError.*Hint: ") as caught:
        exercises.check("lsh_hyperplane_bucket", lambda x, normals: 1 / 0)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_every_exercise_has_a_prompt_and_an_unknown_name_is_refused():
    assert all(e.prompt.strip() and e.notebook for e in exercises.EXERCISES.values())
    with pytest.raises(ValueError, match="name: expected one of"):
        exercises.check("no_such_exercise", 1)


def test_claim_fails_with_its_words():
    exercises.claim("two is more than one", 2 > 1)
    with pytest.raises(AssertionError, match="the notebook claims: one is more than two"):
        exercises.claim("one is more than two", 1 > 2)
