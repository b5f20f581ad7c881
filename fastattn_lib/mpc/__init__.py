"""Massively parallel computation (MPC), and why ANNA and MPC can simulate each other.

The model (Karloff et al. 2010; the "(γ, δ)-MPC" of Sanford, Hsu and Telgarsky 2024): M machines, each
with a local memory of s words. Computation runs in synchronous rounds. In a round every machine applies a
local function to its memory, keeps some words and sends the others as messages, each addressed to a
machine; what arrives is in memory at the start of the next round. No machine may hold, send or receive
more than s words in a round. The cost of a protocol is its number of rounds. The ANNA paper reports that
ANNA-transformers and MPC simulate each other, depth for rounds up to constant factors (with polynomial
slack in width, heads and machines); we know its proofs only from summaries. ANNA simulates MPC
(here one ANNA layer per round) and MPC simulates ANNA (here O(1/δ) rounds per ANNA layer). The
constructions in this package are ours, written to show those results at work. So is one simplification:
a message is addressed to a (machine, slot) pair, where the model names only the machine; a receiver could
sort its at most s words locally, so the slot only fixes their order in advance.

The modules, in reading order:

* `model`: machines, messages, `Protocol`, the limits (`MPCLimitError`), the one round loop
  (`run_rounds`) and `simulate`, the loop with the plain in-process executor;
* `protocols`: aggregation trees (`global_sum`, `prefix_sums`), `StarSum`, `KHopProtocol`, `Match2Protocol`;
* `dask_backend`: `DaskBackend`, the same loop with each round on a `dask.distributed` cluster;
* `exact_match`: `ExactMatchCodes`, LSH tables under which ANNA is exact-match attention;
* `transformers`: ANNA simulating MPC (`MPCTransformer`, a protocol run by ANNA layers), and k-hop and
  Match2 solved by hand-built ANNA-transformers (`build_khop_transformer`, `Match2Transformer`);
* `costs`: MPC simulating ANNA, counted: MPC machines and rounds for one ANNA layer against the
  straightforward simulation of one softmax layer.
* `low_rank`: one low-rank attention layer as a protocol (`LowRankProtocol`): an aggregation tree up and
  down, a constant number of rounds when the fan-in grows like N^δ, and so a constant number of ANNA layers.

`receptive_fields` (the Reformer separation) lives in `fastattn_lib.reformer` and is re-exported here.
Every name is importable from `fastattn_lib.mpc` directly.
"""

from ..reformer import receptive_fields
from .costs import LayerCost, anna_layer_mpc_cost, layer_cost_table, softmax_layer_mpc_cost
from .dask_backend import DaskBackend
from .exact_match import NULL, ExactMatchCodes
from .low_rank import LowRankCheck, LowRankProtocol, check_low_rank, memory_for_fan_in, tree_height
from .model import (
    Message,
    MPCLimitError,
    MPCRun,
    Protocol,
    RoundResult,
    RoundStats,
    empty_memory,
    play_round_in_process,
    run_rounds,
    simulate,
    words,
)
from .protocols import (
    OPS,
    KHopProtocol,
    Match2Protocol,
    StarSum,
    TreeAggregation,
    global_sum,
    prefix_sums,
)
from .transformers import (
    KHopTransformer,
    Match2Transformer,
    MPCTransformer,
    TransformerRun,
    build_khop_transformer,
)

__all__ = [
    # model
    "Message",
    "MPCLimitError",
    "Protocol",
    "RoundStats",
    "MPCRun",
    "RoundResult",
    "empty_memory",
    "words",
    "run_rounds",
    "play_round_in_process",
    "simulate",
    # protocols
    "OPS",
    "TreeAggregation",
    "global_sum",
    "prefix_sums",
    "StarSum",
    "KHopProtocol",
    "Match2Protocol",
    # dask_backend
    "DaskBackend",
    # exact_match
    "NULL",
    "ExactMatchCodes",
    # transformers
    "TransformerRun",
    "MPCTransformer",
    "KHopTransformer",
    "build_khop_transformer",
    "Match2Transformer",
    # low_rank
    "LowRankProtocol",
    "LowRankCheck",
    "check_low_rank",
    "memory_for_fan_in",
    "tree_height",
    # costs
    "LayerCost",
    "anna_layer_mpc_cost",
    "softmax_layer_mpc_cost",
    "layer_cost_table",
    # the Reformer separation
    "receptive_fields",
]
