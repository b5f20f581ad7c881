"""fastattn_lib: the small library behind the fastattn notebooks. Modules in reading order:

- `checks`      every argument check, one ValueError naming the argument.
- `device`      CPU or CUDA (`"auto"`), seeded generators, memory limits.
- `kernels`     the compiled CPU kernels (cross-polytope arg-max, Hadamard rotation, bucket sums, causal
                running sums), each beside its torch oracle.
- `lsh`         hyperplane and cross-polytope hashing (dense or Hadamard rotation), ℓ tables of z hashes.
- `collisions`  collision probabilities in theory: p(θ), the AND-OR amplification, ρ.
- `anna`        ANNA: collision-count-weighted bucket averages (Algorithms 1 and 2, the dense oracle),
                the collision kernel for training, and the (c, r, ℓ, η)-ANNA guarantee checked on an input.
- `attention`   attention kinds as values (`Softmax`, `Anna`, `CollisionKernel`, `StraightThroughAnna`,
                `LowRank`), softmax and low-rank attention.
- `reformer`    constant-size-bucket attention and the depth it needs for a global average.
- `tasks`       Match2 and k-hop / induction heads.
- `models`      one tiny transformer for every experiment, its attention given per layer.
- `training`    the softmax surrogate, fine-tuning into ANNA, checkpoints and the error grids (a package).
- `mpc`         the MPC model, its protocols, and transformers that execute them (a package).
- `nats`        NAtS roles, masks, the role scorer, the sparsity term and the NAtS attention kind.
- `kv_cache`    token-by-token decoding through an evicting KV cache; its policies (NAtS, StreamingLLM, H2O).
- `nats_experiment`  the records-and-queries experiment: NAtS fine-tuned with the backbone, and the baselines.
- `nats_frozen` the same with the backbone frozen (only the role scorers train), baselines on its weights.
- `data`        the shipped test sets and checkpoints, verified against their manifest.
- `bench/`      `python -m fastattn_lib.bench`: ANNA's speed and memory against its peers (a package).
- `gpu_check`   `make gpu-check`: the CUDA tests, panels and benchmark on a GPU machine.
- `exercises/`  the notebooks' exercises, one module per topic; `check(name, answer)` and `claim(words, ok)`.
- `notebooks`   runs the notebooks headless (papermill) and strips their outputs.
- `panels/`     one module per notebook: pure update functions, figures and the widgets built on them.
"""

__version__ = "0.1.0"
