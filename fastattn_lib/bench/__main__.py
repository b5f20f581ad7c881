"""`python -m fastattn_lib.bench`: see the package docstring; `--help` lists the options."""

import sys

from .run import main

if __name__ == "__main__":
    sys.exit(main())
