"""`python -m fastattn_lib.training reproduce --task match2|induction`: retrain and re-evaluate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import data
from .figure1 import REPRODUCE_BETAS, reproduce
from .recipe import TASKS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastattn_lib.training", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=("reproduce",))
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument(
        "--betas", type=float, nargs="+", help="default: 0.1 1 10 for match2, 10 for induction"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out-dir", type=Path, default=data.DATA_DIR)
    parser.add_argument("--evaluate-only", action="store_true", help="re-evaluate the existing checkpoints")
    args = parser.parse_args(argv)
    betas = args.betas or REPRODUCE_BETAS[args.task]
    results = reproduce(args.task, betas, args.out_dir, args.device, retrain=not args.evaluate_only)
    for run in results["runs"]:
        print(
            f"β={run['beta']:g}: surrogate error {run['softmax_error']:.4f}, "
            f"collision-kernel error {run['kernel_error']:.4f}, "
            f"training {sum(run['train_seconds'].values()):.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
