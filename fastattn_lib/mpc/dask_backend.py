"""MPC protocols on a real cluster: machines are the items of a Dask bag, a round is a map and a shuffle.

The round loop is `model.run_rounds`, the same as the simulator's; only the round itself runs on
`dask.distributed` workers. The local functions run in a map; every outgoing word is keyed by its
destination and a groupby brings each machine its own kept words and its messages (the shuffle), where the
receiver's limit checks run; the `compute` that brings back the new memories and the traffic counts is the
round barrier. dask is an optional extra (`pip install 'fastattn[mpc]'`), imported only when a backend is
created.
"""

from __future__ import annotations

from .model import MPCRun, Protocol, RoundResult, local_step, receive, run_rounds


def _dask_local(item, protocol, round):
    """Machine-side half of a round on a Dask worker: run the local function and check the outbox."""
    machine, memory = item
    kept, messages = local_step(protocol, round, machine, memory)
    return machine, kept, messages


def _dask_deliveries(stepped):
    """Everything addressed to a machine, keyed by that machine: its own kept words and its messages."""
    machine, kept, messages = stepped
    yield machine, ("kept", kept, len(messages))
    for message in messages:
        yield message.dest, ("message", machine, message)


def _dask_receive(group, protocol, round):
    """Receiver-side half of a round, after the shuffle: one machine's new memory and its traffic."""
    machine, parcels = group
    kept, sent, incoming = None, 0, []
    for parcel in parcels:
        if parcel[0] == "kept":
            _, kept, sent = parcel
        else:
            incoming.append((parcel[1], parcel[2]))
    memory = receive(round, machine, kept, incoming, protocol.memory)
    return machine, memory, sent, len(incoming)


class DaskBackend:
    """Run protocols on a `dask.distributed` cluster: machines are the items of a Dask bag split into
    partitions, a round is a map (the local functions, on the workers) followed by a shuffle (a groupby on
    the destination, where the receive checks run), and the round barrier is the `compute` that brings
    back the new memories and the traffic counts before the next round is scheduled.

    `address`: a scheduler address for a real cluster; without it a `LocalCluster` is started (threads in
    this process when `processes=False`). Outputs and round counts equal `simulate`'s, and the same limit
    checks run on the workers. Use as a context manager, or call `close()`.
    """

    def __init__(self, address: str | None = None, n_workers: int = 2, processes: bool = True):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as err:
            raise ImportError(
                "DaskBackend needs dask.distributed: pip install 'fastattn[mpc]' (or 'dask[distributed]')"
            ) from err
        self._cluster = None
        if address is None:
            self._cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=":0",  # any free port: never collide with a running cluster
                worker_dashboard_address=":0",
            )
            address = self._cluster.scheduler_address
        self.client = Client(address)
        self.n_partitions = max(1, n_workers)

    def play_round(self, protocol: Protocol, round: int, memories: list[list]) -> RoundResult:
        """One round on the cluster. The messages stay on the workers, so none are reported."""
        import dask.bag as db

        state = db.from_sequence(list(enumerate(memories)), npartitions=self.n_partitions)
        stepped = state.map(_dask_local, protocol, round)
        shuffled = stepped.map(_dask_deliveries).flatten().groupby(lambda item: item[0], shuffle="tasks")
        received = shuffled.map(lambda group: (group[0], [parcel for _, parcel in group[1]])).map(
            _dask_receive, protocol, round
        )
        result = sorted(received.compute(), key=lambda item: item[0])
        return RoundResult(
            [memory for _, memory, _, _ in result],
            [sent for *_, sent, _ in result],
            [got for *_, got in result],
        )

    def run(self, protocol: Protocol, record: bool = False) -> MPCRun:
        """`simulate` on the cluster: the same output, round statistics and, with `record`, history (but
        no `messages`)."""
        return run_rounds(protocol, self.play_round, record)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
