"""The Dask backend: the simulator's round loop with each round played on a dask.distributed cluster."""

import os

import pytest

from fastattn_lib import mpc, tasks


def _require_dask():
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("dask.distributed is missing; the Makefile installs the 'mpc' extra")
        pytest.skip("dask.distributed is not installed (pip install 'fastattn[mpc]')")


@pytest.fixture(scope="module")
def dask_backend():
    _require_dask()
    with mpc.DaskBackend(processes=False) as backend:
        yield backend


@pytest.mark.parametrize(
    "protocol",
    [
        mpc.prefix_sums(list(range(30)), 4),
        mpc.KHopProtocol(tasks.khop(1, seq_len=40, alphabet=4, hops=3, seed=4)[0][0].tolist(), 3, 4, 32),
    ],
    ids=["prefix_sums", "khop"],
)
def test_dask_backend_equals_the_simulator(dask_backend, protocol):
    simulated = mpc.simulate(protocol, record=True)
    distributed = dask_backend.run(protocol, record=True)
    assert distributed.output == simulated.output
    assert distributed.n_rounds == simulated.n_rounds
    assert [(r.sent, r.received) for r in distributed.rounds] == [
        (r.sent, r.received) for r in simulated.rounds
    ]
    assert distributed.history == simulated.history


def test_dask_backend_plays_its_rounds_through_the_shared_loop(dask_backend, monkeypatch):
    protocol = mpc.global_sum(list(range(30)), 3)
    calls, play = [], dask_backend.play_round

    def spy(protocol, round, memories):
        calls.append(round)
        result = play(protocol, round, memories)
        return result._replace(sent=[s + 100 for s in result.sent])  # carried over by the loop only

    monkeypatch.setattr(dask_backend, "play_round", spy)
    run = dask_backend.run(protocol)
    assert calls == list(range(protocol.n_rounds)) and run.output == sum(range(30))
    assert [r.sent for r in run.rounds] == [[s + 100 for s in r.sent] for r in mpc.simulate(protocol).rounds]


def test_dask_backend_enforces_the_limits_on_the_workers(dask_backend):
    with pytest.raises(mpc.MPCLimitError, match=r"machine 0 would receive 13 words in round 0.*s = 8"):
        dask_backend.run(mpc.StarSum(list(range(100)), memory=8))


def test_dask_backend_with_worker_processes():
    _require_dask()
    protocol = mpc.global_sum(list(range(50)), 3)
    with mpc.DaskBackend(n_workers=2, processes=True) as backend:
        assert backend.run(protocol).output == sum(range(50))
