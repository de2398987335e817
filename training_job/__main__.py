"""Container entry point: ``python -m training_job [mlsys train options]``.

Same options and ``MLSYS_*`` environment variables as ``mlsys train`` (the
dispatcher maps errors to one-line messages and exit code 2 for bad input);
CloudWatch EMF metrics are on by default here because the container's stdout
goes to CloudWatch Logs. ``--no-emf`` turns them off.
"""

from __future__ import annotations

import sys

from mlsys.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", "--emf", *sys.argv[1:]]))
