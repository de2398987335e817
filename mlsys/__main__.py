"""``python -m mlsys ...``: the ``mlsys`` command without its console script.

The training container's entry point (``python -m mlsys train --emf``; see
``training_job/Dockerfile``), and any environment where the script is not on ``PATH``.
"""

from __future__ import annotations

from mlsys.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
