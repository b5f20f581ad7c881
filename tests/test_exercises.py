"""Every exercise's reference solution passes its check; wrong, missing and crashing answers get the hint."""

import pytest

from fastattn_lib import exercises

NAMES = sorted(exercises.EXERCISES)


@pytest.mark.parametrize("name", NAMES)
def test_the_solution_is_accepted(name, capsys):
    exercises.check(name, exercises.EXERCISES[name].solution())
    assert f"✓ {name}" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_wrong_and_missing_answers_get_the_hint(name):
    exercise = exercises.EXERCISES[name]
    assert None in exercise.wrong and len(exercise.wrong) >= 2
    for wrong in exercise.wrong:
        with pytest.raises(AssertionError, match="Hint: ") as caught:
            exercises.check(name, wrong)
        assert exercise.hint in str(caught.value)


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
