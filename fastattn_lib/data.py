"""The small artefacts shipped in `data/`, and the only way the package reads them.

Every file is listed in `data/manifest.json` with its sha256, its size, what produced it and the command
that regenerates it. Loading checks the hash first and reads arrays with `allow_pickle=False`, so a
changed or foreign file is refused instead of executed.

    python -m fastattn_lib.data make-test-sets   # (re)generate the fixed test sets and update the manifest
    python -m fastattn_lib.data verify           # check every file against the manifest
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from . import tasks

# The package's view of data/: in a checkout `fastattn_lib/_data` is a link to the top-level data/ (the one
# source), and a wheel carries a copy of it, so an installed package finds its checkpoints too.
DATA_DIR = Path(__file__).resolve().parent / "_data"
MANIFEST = "manifest.json"
REGENERATE = "python -m fastattn_lib.data make-test-sets"
# The fixed evaluation sets: 256 samples, as in the paper's experiments, with a seed no training run uses.
TEST_SETS = {
    "match2": {"n_samples": 256, "seq_len": 32, "modulus": 37, "seed": 20250910},
    "khop": {"n_samples": 256, "seq_len": 100, "alphabet": 4, "hops": 1, "seed": 20250910},
}


class DataError(ValueError):
    """A shipped file is missing, unlisted or different from what the manifest recorded."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(data_dir: Path = DATA_DIR) -> dict:
    path = Path(data_dir) / MANIFEST
    if not path.exists():
        raise DataError(f"{path} is missing; regenerate the data with `{REGENERATE}`")
    return json.loads(path.read_text())


def verified_path(name: str, data_dir: Path = DATA_DIR) -> Path:
    """The path of a shipped file, after checking it exists and matches the manifest's sha256."""
    entry = read_manifest(data_dir)["files"].get(name)
    how = entry["command"] if entry else REGENERATE
    if entry is None:
        raise DataError(f"{name} is not listed in {Path(data_dir) / MANIFEST}; regenerate it with `{how}`")
    path = Path(data_dir) / name
    if not path.exists():
        raise DataError(f"{path} is missing; regenerate it with `{how}`")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise DataError(
            f"{path} is corrupt or changed: sha256 {actual[:12]}…, manifest {entry['sha256'][:12]}…; "
            f"regenerate it with `{how}`"
        )
    return path


def file_of_test_set(task: str) -> str:
    return f"{task}_test.npz"


def load_test_set(task: str, data_dir: Path = DATA_DIR) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed test set of `task` ("match2" or "khop"): (x, y) LongTensors [256, N], hash-verified."""
    if task not in TEST_SETS:
        raise ValueError(f"task: expected one of {sorted(TEST_SETS)}, got {task!r}")
    with np.load(verified_path(file_of_test_set(task), data_dir), allow_pickle=False) as arrays:
        return torch.from_numpy(arrays["x"]).long(), torch.from_numpy(arrays["y"]).long()


def generate_test_set(task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Regenerate a test set from its recorded generator arguments."""
    return getattr(tasks, task)(**TEST_SETS[task])


def record_file(path: Path, kind: str, command: str, **details) -> dict:
    """List `path` (a file inside its data folder) in that folder's manifest with its sha256 and size,
    what kind of artefact it is, the command that regenerates it and any `details` (generator arguments,
    training settings). Returns the manifest entry."""
    path = Path(path)
    manifest_path = path.parent / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"files": {}}
    entry = {"sha256": sha256_of(path), "bytes": path.stat().st_size, "kind": kind, "command": command}
    manifest["files"][path.name] = {**entry, **details}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest["files"][path.name]


def write_test_sets(data_dir: Path = DATA_DIR) -> dict:
    """Generate every test set into `data_dir` and record it in the manifest; returns the manifest."""
    data_dir = Path(data_dir)
    for task in TEST_SETS:
        x, y = generate_test_set(task)
        path = data_dir / file_of_test_set(task)
        np.savez_compressed(path, x=x.numpy().astype(np.int8), y=y.numpy().astype(np.int8))
        record_file(
            path, "test set", REGENERATE, generator=f"fastattn_lib.tasks.{task}", arguments=TEST_SETS[task]
        )
    return read_manifest(data_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastattn_lib.data", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("make-test-sets", "verify"))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    if args.command == "make-test-sets":
        for name, entry in write_test_sets(args.data_dir)["files"].items():
            print(f"{name}: {entry['bytes']} bytes, sha256 {entry['sha256']}")
        return 0
    failures = 0
    for name in read_manifest(args.data_dir)["files"]:
        try:
            verified_path(name, args.data_dir)
            print(f"{name}: ok")
        except DataError as err:
            failures += 1
            print(err)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
