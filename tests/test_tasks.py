"""Match2 and k-hop generators against brute force, and the shipped, hash-verified test sets."""

import shutil

import pytest
import torch

from fastattn_lib import data, tasks


def brute_match2(x, modulus, include_self):
    return [
        [
            int(any((a + b) % modulus == 0 for j, b in enumerate(row) if include_self or j != i))
            for i, a in enumerate(row)
        ]
        for row in x.tolist()
    ]


def brute_khop(x, alphabet, hops):
    labels = []
    for row in x.tolist():

        def find(i, row=row):
            earlier = [j for j in range(i) if row[j] == row[i]]
            return earlier[-1] + 1 if earlier else None

        out = []
        for i in range(len(row)):
            position = i
            for _ in range(hops):
                position = find(position) if position is not None else None
            out.append(row[position] if position is not None else alphabet)
        labels.append(out)
    return labels


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize(("seq_len", "modulus"), [(32, 37), (10, 6), (5, 2)])
def test_match2_labels_match_brute_force(seq_len, modulus, include_self):
    x, y = tasks.match2(50, seq_len, modulus, seed=3, include_self=include_self)
    assert x.shape == y.shape == (50, seq_len) and x.min() >= 0 and x.max() < modulus
    assert y.tolist() == brute_match2(x, modulus, include_self)


def test_match2_positive_rate_is_the_papers():
    """N = 32, M = 37: 1 − (36/37)^32 ≈ 0.584 with j = i allowed, 1 − (36/37)^31 ≈ 0.572 without."""
    _, y = tasks.match2(20000, seed=1)
    _, y_strict = tasks.match2(20000, seed=1, include_self=False)
    assert abs(y.float().mean().item() - (1 - (36 / 37) ** 32)) < 0.004
    assert abs(y_strict.float().mean().item() - (1 - (36 / 37) ** 31)) < 0.004


@pytest.mark.parametrize("hops", [1, 2, 3, 5])
@pytest.mark.parametrize("alphabet", [2, 3, 4])
def test_khop_labels_match_plain_python(alphabet, hops):
    x, y = tasks.khop(20, 40, alphabet, hops, seed=alphabet * 10 + hops)
    assert y.tolist() == brute_khop(x, alphabet, hops)


def test_khop_sequences_never_repeat_a_token_and_use_the_whole_alphabet():
    x, y = tasks.khop(500, 100, 4, 1, seed=2)
    assert (x[:, 1:] != x[:, :-1]).all()
    assert torch.bincount(x.flatten(), minlength=4).min() > 0.2 * x.numel() / 4
    assert (y[:, 0] == 4).all() and (y == 4).float().mean() < 0.1  # only early positions lack a copy


def test_generators_are_seeded_and_validate_arguments():
    assert torch.equal(tasks.match2(5, seed=7)[0], tasks.match2(5, seed=7)[0])
    assert not torch.equal(tasks.khop(5, seed=7)[0], tasks.khop(5, seed=8)[0])
    for call, name in [
        (lambda: tasks.match2(0), "n_samples"),
        (lambda: tasks.match2(5, modulus=1), "modulus"),
        (lambda: tasks.khop(5, alphabet=1), "alphabet"),
        (lambda: tasks.khop(5, hops=0), "hops"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()


@pytest.mark.parametrize("task", sorted(data.TEST_SETS))
def test_shipped_test_sets_load_verified_and_regenerate_identically(task):
    x, y = data.load_test_set(task)
    assert x.shape[0] == 256 and x.dtype == y.dtype == torch.long
    regenerated = data.generate_test_set(task)
    assert torch.equal(x, regenerated[0]) and torch.equal(y, regenerated[1])


def test_a_corrupt_or_missing_file_is_refused_with_the_regeneration_command(tmp_path):
    shutil.copytree(data.DATA_DIR, tmp_path / "data")
    copy = tmp_path / "data"
    path = copy / data.file_of_test_set("match2")
    content = bytearray(path.read_bytes())
    content[-5] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(data.DataError, match=r"corrupt.*make-test-sets"):
        data.load_test_set("match2", copy)
    path.unlink()
    with pytest.raises(data.DataError, match=r"missing.*make-test-sets"):
        data.load_test_set("match2", copy)
    assert data.main(["verify", "--data-dir", str(copy)]) == 1
    with pytest.raises(ValueError, match="task"):
        data.load_test_set("match3")


def test_everything_in_data_is_listed_and_small():
    listed = set(data.read_manifest()["files"])
    present = {p.name for p in data.DATA_DIR.iterdir()} - {"README.md", data.MANIFEST}
    assert present == listed
    assert sum((data.DATA_DIR / name).stat().st_size for name in present) < 5 * 2**20
