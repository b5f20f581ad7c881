"""Training the tiny transformer with the softmax surrogate, carrying it over to ANNA; the shipped results.

- `recipe`       the tasks, `TrainConfig`, the three phases (surrogate, collision kernel, ANNA) and `train`;
                 error rates under any attention.
- `checkpoints`  saving and loading both stages' weights, hash-verified (`load_pretrained`, `load_run`).
- `diagnosis`    why weight copying fails: what the attention hands the MLP under softmax and ANNA.
- `figure1`      the ANNA error grids over ℓ and z for each β, and `reproduce`, which ships them.

`python -m fastattn_lib.training reproduce --task match2` (or `--task induction`) retrains and re-evaluates.
"""

from .checkpoints import (
    STAGES,
    checkpoint_name,
    get_run,
    load_checkpoint,
    load_pretrained,
    load_run,
    save_checkpoint,
)
from .figure1 import (
    GRID_DRAWS,
    GRID_TEST_SAMPLES,
    GRIDS,
    REPRODUCE,
    REPRODUCE_BETAS,
    error_grid,
    experiment_result,
    load_results,
    reproduce,
)
from .recipe import (
    PHASES,
    TASK_DEFAULTS,
    TASKS,
    History,
    TrainConfig,
    TrainResult,
    anna_error,
    anna_errors,
    build_model,
    check_task,
    error_rate,
    kernel_attention,
    learning_rate_factor,
    previous_token_weight,
    train,
    training_set,
)
