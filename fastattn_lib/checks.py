"""Every argument check of the library, in one place: each raises one ValueError that names the argument
and says what was expected. Public functions call these at the top; internal helpers trust their callers.
"""

from __future__ import annotations

import math

import torch

FAMILIES = ("hyperplane", "cross_polytope")  # the LSH families of `lsh`
ROTATIONS = ("dense", "hadamard")  # how a cross-polytope hash rotates its input (see `lsh.LSHTables`)
IMPLS = ("tables", "linear_memory", "dense")  # ANNA's three implementations (see `attention`)
ROLE_VALUES = (0, 1, 2)  # NAtS roles: global, local, sliding (see `nats`)
GLOBAL, LOCAL, SLIDING = ROLE_VALUES


# ---- numbers ---------------------------------------------------------------------------------------------


def check_count(name: str, value, minimum: int = 1) -> None:
    """Raise ValueError unless `value` is an integer (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def check_positive_number(name: str, value, what: str = "a finite number > 0") -> None:
    """Raise ValueError unless `value` is a finite real number > 0 (a bool is not a number)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name}: expected {what}, got {value!r}")


def check_nonnegative_number(name: str, value) -> None:
    """Raise ValueError unless `value` is a finite real number ≥ 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")


def check_seed(seed) -> None:
    """A seed for `device.cpu_generator`: an integer in [0, 2**32)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed: expected an integer in [0, 2**32), got {seed!r}")


def check_beta(beta) -> None:
    """β, the inverse temperature of softmax(β·q̂·k̂ᵀ)."""
    check_positive_number("beta", beta)


def check_angles(theta) -> tuple[torch.Tensor, bool]:
    """θ in radians within [0, π] (a number, or anything torch can turn into a tensor): returns the angles as
    a float64 CPU tensor and whether θ was a plain number."""
    scalar = isinstance(theta, (int, float)) and not isinstance(theta, bool)
    angles = torch.as_tensor(theta, dtype=torch.float64).cpu()
    # float32 π rounds up past math.pi; allow that rounding and nothing more
    if not torch.isfinite(angles).all() or (angles < 0).any() or (angles > math.pi + 1e-6).any():
        raise ValueError("theta: expected finite angles in radians within [0, π]")
    return angles.clamp(max=math.pi), scalar


def check_choice(name: str, value, choices: tuple) -> None:
    """Raise ValueError unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")


def check_family(family) -> None:
    check_choice("family", family, FAMILIES)


def check_rotation(rotation, family) -> None:
    check_choice("rotation", rotation, ROTATIONS)
    if rotation != "dense" and family != "cross_polytope":
        raise ValueError(
            f"rotation: {rotation!r} applies to cross_polytope hashing only, got family={family!r}"
        )


def check_hashing(n_tables, n_hashes, impl="tables") -> None:
    """ℓ = n_tables ≥ 1, z = n_hashes ≥ 1 and an ANNA implementation."""
    check_count("n_tables", n_tables)
    check_count("n_hashes", n_hashes)
    check_choice("impl", impl, IMPLS)


# ---- tensors ---------------------------------------------------------------------------------------------


def check_finite_floats(name: str, x) -> None:
    """Raise ValueError unless `x` is a floating-point tensor with only finite entries."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    # min and max propagate NaN and ±inf: one pass for both, twenty times cheaper than isfinite(x).all()
    if x.numel() and not torch.isfinite(torch.stack(torch.aminmax(x))).all():
        raise ValueError(f"{name}: contains NaN or infinite entries")


def check_qkv(q, k, v, causal: bool = False, query_positions=None) -> None:
    """Queries [..., N, m], keys [..., M, m] and values [..., M, d_v]: finite floats of one dtype and device,
    matching leading (batch, head) dimensions; N = M when causal unless the query positions are given."""
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        check_finite_floats(name, tensor)
        if tensor.dim() < 2:
            raise ValueError(f"{name}: expected shape [..., N, dim], got {tuple(tensor.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q, k: widths differ ({q.shape[-1]} vs {k.shape[-1]}); both must be m")
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"k, v: expected matching [..., M], got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q, k: batch dimensions differ ({tuple(q.shape[:-2])} vs {tuple(k.shape[:-2])})")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v: dtypes differ ({q.dtype}, {k.dtype}, {v.dtype})")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v: devices differ ({q.device}, {k.device}, {v.device})")
    if query_positions is not None:
        if query_positions.shape != (q.shape[-2],) or query_positions.dtype != torch.long:
            raise ValueError(f"query_positions: expected a LongTensor of shape ({q.shape[-2]},)")
    elif causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal: needs as many queries as keys, got N={q.shape[-2]}, M={k.shape[-2]}")


def check_token_ids(
    name: str, x, vocab_size: int, max_len: int | None = None, exact_len: bool = False
) -> None:
    """Token ids [batch, N]: an integer tensor with every id in 0 .. vocab_size − 1 and N ≤ max_len
    (N = max_len when `exact_len`)."""
    if not isinstance(x, torch.Tensor) or x.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64):
        raise ValueError(
            f"{name}: expected an integer tensor of token ids [batch, N], got {getattr(x, 'dtype', type(x))}"
        )
    too_long = max_len is not None and (
        x.dim() == 2 and (x.shape[1] != max_len if exact_len else x.shape[1] > max_len)
    )
    if x.dim() != 2 or too_long:
        length = f"N = {max_len}" if exact_len else f"N ≤ {max_len}"
        raise ValueError(f"{name}: expected token ids [batch, {length}], got shape {tuple(x.shape)}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise ValueError(
            f"{name}: expected token ids in 0..{vocab_size - 1} (vocabulary size {vocab_size}), "
            f"got values in {int(x.min())}..{int(x.max())}"
        )


def check_table_memory(n_tables: int, n_rows: int, bytes_per_row: int, limit: int) -> None:
    """Refuse up front an ANNA call whose ℓ tables would need more than `limit` bytes."""
    needed = n_tables * n_rows * bytes_per_row
    if needed > limit:
        raise ValueError(
            f"n_tables: {n_tables} tables over {n_rows} rows would need about {needed / 2**30:.1f} GiB "
            f"({needed} bytes), more than the {limit / 2**30:.0f} GiB this call allows; use fewer tables "
            "or impl='linear_memory'"
        )


# ---- NAtS ------------------------------------------------------------------------------------------------


def check_window(window) -> None:
    """W, the lifetime of a SLIDING token: an integer ≥ 0."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ValueError(f"window: expected an integer W ≥ 0, got {window!r}")


def check_budget(budget) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget: expected a number of cache entries ≥ 1, got {budget!r}")


def check_roles(roles) -> None:
    """NAtS roles [..., N]: an integer tensor of 0 (global), 1 (local) or 2 (sliding)."""
    if not isinstance(roles, torch.Tensor) or roles.dtype.is_floating_point or roles.dtype == torch.bool:
        raise ValueError(
            f"roles: expected an integer tensor [..., N], got {getattr(roles, 'dtype', type(roles))}"
        )
    if roles.dim() < 1 or roles.shape[-1] < 1:
        raise ValueError(f"roles: expected shape [..., N] with N ≥ 1, got {tuple(roles.shape)}")
    bad = (roles < min(ROLE_VALUES)) | (roles > max(ROLE_VALUES))
    if bad.any():
        found = roles[bad].unique().tolist()
        raise ValueError(f"roles: expected values in {{0 (global), 1 (local), 2 (sliding)}}, got {found}")


# ---- MPC -------------------------------------------------------------------------------------------------


def check_protocol(protocol) -> None:
    """An MPC protocol's sizes: at least one machine, s ≥ 2 words of memory, a round count ≥ 0."""
    check_count("protocol.n_machines", protocol.n_machines)
    check_count("protocol.memory", protocol.memory, minimum=2)
    check_count("protocol.n_rounds", protocol.n_rounds, minimum=0)


def check_chunk_roles(name: str, roles: torch.Tensor, chunk: int) -> None:
    """Refuse roles [..., N] (or one-hots [..., N, 3] with `name` = "one_hot") that differ inside a chunk."""
    check_count("chunk", chunk)
    axis = -1 if name == "roles" else -2
    n = roles.shape[axis]
    first = torch.arange(n, device=roles.device) // chunk * chunk  # the first token of each token's chunk
    if not torch.equal(roles, roles.index_select(roles.dim() + axis, first)):
        raise ValueError(f"{name}: expected one role per chunk of {chunk} tokens, alike inside each chunk")
