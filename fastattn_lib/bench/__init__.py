"""`python -m fastattn_lib.bench`: ANNA's forward time and memory against torch's SDPA as N grows, and more.

- `timing`  one forward pass of a method (SDPA, ANNA's Algorithms 1 and 2 with dense or Hadamard rotation,
            reformer-pytorch), timed in this process or a fresh child; ANNA's time split.
- `report`  ratios to SDPA measured in the same run, slopes, markdown tables, the plot.
- `extras`  one training step of induction heads, every panel's update, the Hadamard collision check.
- `run`     the command line: sweeps one head and 8 heads, causal and not, memory over ℓ; JSON and tables.

Speed targets are read off this output (ratios in one run), never asserted in tests.
"""

from .report import figure, format_table, loglog_slope, markdown, summarize
from .timing import METHODS, cpu_threads, forward, inputs, measure, median_seconds, reformer_available
