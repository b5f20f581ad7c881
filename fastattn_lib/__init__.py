"""fastattn_lib: the small library behind the fastattn notebooks.

- `device`    picks CPU or CUDA (`"auto"`) and seeds generators.
- `lsh`       random-hyperplane and cross-polytope hashing, the ℓ tables of z concatenated hashes,
              and the collision-probability theory the notebooks compare against.
- `notebooks` runs the notebooks headless (papermill) and strips their outputs.
- `panels/`   one module per notebook: pure update functions, figures and the widgets built on them.
"""

__version__ = "0.1.0"
