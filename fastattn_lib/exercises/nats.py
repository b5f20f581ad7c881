"""Notebook 05's exercises (NAtS): what a window of zero leaves visible, the sparsity term by hand, each
key's lifetime as a function, and the smallest eviction window the trained model needs."""

from __future__ import annotations

import torch

from .. import nats
from .core import Exercise, WrongAnswer, as_number, close_to, computed, equals, require_function, same_output

ROLES_AT_W0 = "GLSLSGLS"  # the roles of exercise nats_visible_at_window_0
ROLES_FOR_SPARSITY = "GLSLGS"  # the roles of exercise nats_sparsity_by_hand


def _roles(pattern: str) -> torch.Tensor:
    return torch.tensor(["GLS".index(letter) for letter in pattern])


def _visible_to_last_query(pattern: str, window: int) -> tuple[int, ...]:
    mask = nats.nats_mask(_roles(pattern), window)
    return tuple(int(j) for j in mask[-1].nonzero().flatten())


def _judge_key_set(expected: tuple[int, ...]):
    """A set of key positions, given as a tuple, list or set of numbers in any order."""

    def judge(answer) -> bool:
        if not isinstance(answer, (tuple, list, set)):
            raise WrongAnswer(
                f"expected a tuple of key positions, got the {type(answer).__name__} {answer!r}"
            )
        positions = [as_number(j) for j in answer]
        return len(set(positions)) == len(positions) and set(positions) == set(expected)

    return judge


def _sparsity(pattern: str) -> float:
    one_hot = torch.eye(3)[_roles(pattern)]
    return float(nats.sparsity_loss(one_hot, 1.0))


def _lifetimes_reference(roles: str, window: int) -> list[int]:
    n = len(roles)
    closing = [next((k for k in range(j, n) if roles[k] == "G"), n - 1) for j in range(n)]  # e_j, or the end
    ends = {"G": lambda j: n - 1, "L": lambda j: closing[j], "S": lambda j: min(j + window, n - 1)}
    return [ends[role](j) for j, role in enumerate(roles)]


def _judge_lifetimes(function) -> bool:
    """Against the last query of each column of `nats.nats_mask`, on random role strings and windows."""
    require_function(function)
    generator = torch.Generator().manual_seed(5)
    for n, window in ((1, 0), (7, 0), (12, 2), (20, 3), (30, 8)):
        roles = torch.randint(0, 3, (n,), generator=generator)
        pattern = "".join("GLS"[r] for r in roles)
        mask = nats.nats_mask(roles, window)
        expected = (mask * torch.arange(n)[:, None]).amax(dim=0)
        same_output(function(pattern, window), expected, f"roles {pattern!r} and W = {window}")
    return True


def _smallest_full_recall_window() -> int:
    from ..panels import nats as panels  # the shipped models and the panel's held-out sequences

    return panels.smallest_full_recall_window(2.0, device="cpu")


EXERCISES: dict[str, Exercise] = {
    "nats_visible_at_window_0": Exercise(
        notebook="05",
        prompt=f"With the roles {ROLES_AT_W0} (positions 0 to 7) and W = 0, which keys j does the last query "
        "(i = 7) see? Give their positions as a tuple.",
        hint="With W = 0 a sliding key is seen only by its own query. A global key stays for good; a local "
        "key j stays until the first global token at or after j (e_j), that token included; a key whose "
        "span no global token closes stays to the end. And every query sees itself.",
        judge=_judge_key_set(_visible_to_last_query(ROLES_AT_W0, 0)),
        solution=lambda: _visible_to_last_query(ROLES_AT_W0, 0),
        wrong=(None, (0, 5, 7), (0, 1, 3, 5, 6, 7), (0, 5, 6), "0 5 6 7", (0, 5, 6, 7, 7)),
    ),
    "nats_sparsity_by_hand": Exercise(
        notebook="05",
        prompt=f"Compute the sparsity term at λ = 1 for the roles {ROLES_FOR_SPARSITY} (N = 6): the share "
        "of the N(N+1)/2 causal mask entries held by global and local keys (within 0.01).",
        hint="Count, column by column, the queries i ≥ j that see each global or local key j (its own "
        "query included; sliding keys count 0), then divide by N(N+1)/2 = 21.",
        judge=close_to(_sparsity(ROLES_FOR_SPARSITY), 0.01),
        solution=lambda: (6 + 4 + 0 + 2 + 2 + 0) / 21,
        wrong=(None, "0.67", 14, (6 + 4 + 2 + 2) / 36, (6 + 4 + 1 + 2 + 2 + 1) / 21),
    ),
    "nats_key_lifetimes": Exercise(
        notebook="05",
        prompt="Write key_lifetimes(roles, W): for a role string such as 'GSLLS', the last query i that "
        "sees each key j (N − 1 when the key stays to the end of the sequence), as a list.",
        hint="A global key lives to N − 1; a local key to e_j, the first global at or after j (N − 1 if "
        "there is none); a sliding key to j + W, but never past N − 1.",
        judge=_judge_lifetimes,
        solution=lambda: _lifetimes_reference,
        wrong=(
            None,
            lambda roles, window: [len(roles) - 1] * len(roles),
            lambda roles, window: [j + window for j in range(len(roles))],
            lambda roles, window: _lifetimes_reference(roles, window + 1),
        ),
    ),
    "nats_smallest_window": Exercise(
        notebook="05",
        prompt="Find the smallest eviction window W at which the shipped NAtS model at λ = 2 still answers "
        "every query of the panel's 64 held-out sequences, decoding with eviction.",
        hint="Decode with W = 0, 1, 2, … (panels.nats_accuracy(2.0, W, device) is the policy panel's NAtS "
        "accuracy alone) and keep the first W whose accuracy is 1.",
        judge=computed(equals, _smallest_full_recall_window),
        solution=_smallest_full_recall_window,
        wrong=(None, 0, 8, "1"),
    ),
}
