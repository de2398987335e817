"""Run every benchmark suite: ``python -m benchmarks [suite ...]``.

Each suite module exposes ``main() -> int`` and prints its own figures with
the same-run baseline and the ratio to it.
"""

from __future__ import annotations

import importlib
import sys

SUITES = ("training", "inference", "serving", "monitor", "rollout", "scoring")


def main(argv: list[str]) -> int:
    chosen = argv or list(SUITES)
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}")
        return 2
    status = 0
    for name in chosen:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        status |= int(module.main())
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
