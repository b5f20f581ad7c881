"""Where tensors live, and how random draws stay reproducible.

Every public function that allocates takes `device`, which may be `"auto"` (CUDA when torch sees a GPU,
otherwise CPU), `"cpu"`, `"cuda"`, `"cuda:1"`, a `torch.device`, or `None` (meaning `"auto"`).

Random draws (hash functions, data) are made on a CPU `torch.Generator` and then moved, so that a seed
gives the same numbers on every device.
"""

from __future__ import annotations

import os
import zlib

import numba
import numpy as np
import torch

from .checks import check_seed

DeviceLike = str | torch.device | None


def resolve_device(device: DeviceLike = "auto") -> torch.device:
    """Turn `"auto"`, a device string or a `torch.device` into a usable `torch.device`.

    Raises ValueError for an unknown name, or for a CUDA device when torch sees no GPU.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        resolved = device
    elif isinstance(device, str):
        try:
            resolved = torch.device(device)
        except RuntimeError as err:
            raise ValueError(
                f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
            ) from err
    else:
        raise ValueError(f"device: expected a string or torch.device, got {type(device).__name__}")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device: only 'cpu' and 'cuda' are supported, got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} was asked for but torch sees no CUDA device")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {device!r} does not exist; torch sees {torch.cuda.device_count()} CUDA device(s)"
            )
    return resolved


def cpu_generator(seed: int, stream: str) -> torch.Generator:
    """A seeded CPU generator: draw with it, then `.to(device)`, so results do not depend on the device.

    `stream` names what the numbers are for ("lsh-tables", "anna-demo-data", …). Equal seeds of different
    streams give unrelated numbers: otherwise seed 0 of a data set and seed 0 of the hash functions would
    draw the very same Gaussians, and the hashes would be tuned to the data by accident.
    """
    check_seed(seed)
    # torch's CPU generator keeps only 32 bits of its seed, so (seed, stream) is mixed down to 32 bits.
    mixed = np.random.SeedSequence([seed, zlib.crc32(stream.encode())]).generate_state(1)[0]
    return torch.Generator(device="cpu").manual_seed(int(mixed))


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so wall-clock timings measure the computation itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def memory_limit(device: torch.device) -> int:
    """Bytes of memory `device` has in all (the GPU's memory, or the machine's RAM): what no single
    allocation can exceed, so a request above it is refused up front instead of dying in the allocator."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def match_numba_threads() -> None:
    """Give numba's parallel kernels (called from this thread) as many threads as torch's CPU ops.

    numba keeps a thread count of its own; following `torch.set_num_threads` makes one setting govern
    both, so a caller that asks torch for one thread gets one thread everywhere.
    """
    numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
