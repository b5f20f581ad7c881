"""The package carries its data: a wheel built from the checkout loads the shipped checkpoints elsewhere."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_installed_outside_the_checkout_loads_a_verified_checkpoint(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
            ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("fastattn-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import fastattn_lib, torch\n"
        "from fastattn_lib import data, training\n"
        "print(fastattn_lib.__file__)\n"
        "model = training.load_pretrained('match2', beta=10.0, device='cpu')\n"
        "x, y = data.load_test_set('match2')\n"
        "print(training.error_rate(model, x, y))\n"
    )
    # the wheel's copy first on the path: not the checkout's editable install
    environment = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    module_file, error = done.stdout.split()
    assert Path(module_file).is_relative_to(site) and not (site / "fastattn_lib" / "_data").is_symlink()
    assert 0 <= float(error) < 0.01  # the shipped Match2 model, hash-verified, as in the checkout
    (site / "fastattn_lib" / "_data" / "match2_beta10.pt").write_bytes(b"tampered")
    tampered = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=environment, capture_output=True, text=True
    )
    assert tampered.returncode != 0 and "match2_beta10.pt" in tampered.stderr
