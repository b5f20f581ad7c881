"""The benchmark's other sections: one training step of the induction-heads model, every panel's update,
and the collision curve of the Hadamard rotation against the dense one."""

from __future__ import annotations

import math
import statistics

import torch
import torch.nn.functional as F

from .. import data, lsh, training
from ..attention import Softmax, StraightThroughAnna
from ..device import resolve_device
from ..models import hashing_layers
from .timing import median_seconds


def training_step_seconds(device="auto", repeats: int = 5, batch_size: int = 32) -> dict:
    """Median seconds of one Adam step of the two-layer induction-heads model (N = 100) with softmax, and
    with straight-through ANNA at ℓ = (96, 32), z = 2 (the fine-tuning phase's setting), dense and
    Hadamard rotations."""
    device = resolve_device(device)
    model = training.load_pretrained("induction", 10.0, stage="surrogate", device=device).train()
    x, y = (t[:batch_size].to(device) for t in data.load_test_set("khop"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-9)  # tiny steps: the weights barely move
    draws = iter(range(10_000, 10**6))

    def step(make_attention):
        def run():
            logits = model.with_attention(make_attention())(x)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        run()  # warm-up
        return median_seconds(run, device, repeats)[0]

    def straight_through(rotation):
        return lambda: hashing_layers(
            StraightThroughAnna, [96, 32], 2, seed=next(draws), n_hashes=2, impl="dense",
            finite_kernel=True, rotation=rotation,
        )  # fmt: skip

    return {
        "softmax": step(lambda: Softmax(10.0)),
        "straight-through ANNA, dense rotation": step(straight_through("dense")),
        "straight-through ANNA, Hadamard rotation": step(straight_through("hadamard")),
    }


def control_moves(control) -> list:
    """The values a reader would move `control` through from where it stands: a slider one and two steps
    along (back where there is no room) and home again, a dropdown through its other options and home."""
    home = control.value
    if hasattr(control, "options"):
        return [option for option in control.options if option != home] + [home]
    step = control.step if home + 2 * control.step <= control.max else -control.step
    return [home + step, home + 2 * step, home]


def panel_update_seconds(device="auto") -> dict:
    """Per panel, the seconds of its updates (compute and draw) as each control (the device menu aside) is
    moved through `control_moves`, after the panel was built at its defaults: {"median": …, "slowest": …}.

    The slowest move is reported beside the median because panels keep work between updates (the policy
    panel decodes a λ at every W at once): the first move to a new λ pays for the later ones."""
    from ..panels import anna, mpc, nats
    from ..panels import lsh as lsh_panels
    from ..panels import training as training_panels

    device = resolve_device(device).type  # the panels' device dropdowns offer "cpu" and "cuda"

    builders = {
        "01 LSH": lambda: lsh_panels.lsh_panel(device=device),
        "02 ANNA vs softmax": lambda: anna.anna_panel(device=device),
        "03 MPC stepping": mpc.stepping_panel,
        "03 k-hop": lambda: mpc.khop_panel(device=device),
        "04 distilled Match2": lambda: training_panels.distilled_panel(device=device),
        "05 roles": nats.roles_panel,
        "05 policies": lambda: nats.policy_panel(device=device),
    }
    timings = {}
    for name, build in builders.items():
        panel = build()
        times = []
        for control_name, control in panel.controls.items():
            if control_name == "device" or not hasattr(control, "step") and not hasattr(control, "options"):
                continue  # free text (the roles pattern) has no next value
            for value in control_moves(control):
                control.value = value  # the panel's observer refreshes and times it
                times.append(panel.last_update_ms / 1000)
        timings[name] = {"median": statistics.median(times), "slowest": max(times), "moves": len(times)}
    return timings


def collision_check(dim: int = 64, n_draws: int = 100, n_pairs: int = 100, device="auto") -> list[dict]:
    """Measured single-hash collision rate against angle for the dense and the Hadamard rotation."""
    angles = [0.3, 0.6, 0.9, 1.2, math.pi / 2]
    rates = {}
    for rotation in ("dense", "hadamard"):
        rates[rotation], stderr = lsh.empirical_collision_rate(
            angles, dim, family="cross_polytope", n_draws=n_draws, n_pairs=n_pairs, device=device,
            rotation=rotation,
        )  # fmt: skip
    return [
        {"angle": a, "dense": float(d), "hadamard": float(h), "stderr": float(s)}
        for a, d, h, s in zip(angles, rates["dense"], rates["hadamard"], stderr, strict=True)
    ]
