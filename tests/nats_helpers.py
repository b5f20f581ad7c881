"""Role generators and brute-force masks shared by the NAtS and KV-cache tests."""

import torch

from fastattn_lib.nats import GLOBAL, LOCAL, SLIDING


def random_roles(*shape, seed=0):
    return torch.randint(0, 3, shape, generator=torch.Generator().manual_seed(seed))


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def brute_force_mask(roles, window):
    """The definition, one entry at a time."""
    n = len(roles)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(i + 1):
            later = [k for k in range(j, n) if roles[k] == GLOBAL]
            end = later[0] if later else n
            role = int(roles[j])
            mask[i, j] = (
                role == GLOBAL or (role == LOCAL and i <= end) or (role == SLIDING and i - j <= window)
            )
    return mask


def chunk_roles(n, chunk, *batch, seed=0):
    """Roles alike inside each chunk of `chunk` tokens (a shorter last chunk when chunk ∤ n), first GLOBAL."""
    per_chunk = random_roles(*batch, -(-n // chunk), seed=seed)
    per_chunk[..., 0] = GLOBAL
    return per_chunk.repeat_interleave(chunk, dim=-1)[..., :n]


def brute_force_chunk_mask(roles, window, chunk):
    """The chunked definition written over chunks, one entry at a time: a query sees the earlier tokens of
    its own chunk; a LOCAL chunk b stays visible to query chunk a while no chunk strictly between is
    GLOBAL; a SLIDING token to the queries within W tokens; a GLOBAL token always."""
    n = len(roles)
    by_chunk = [int(roles[c * chunk]) for c in range(-(-n // chunk))]
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(i + 1):
            a, b, role = i // chunk, j // chunk, by_chunk[j // chunk]
            mask[i, j] = (
                a == b
                or role == GLOBAL
                or (role == LOCAL and GLOBAL not in by_chunk[b + 1 : a])
                or (role == SLIDING and i - j <= window)
            )
    return mask
