"""Turn ``cdk deploy --outputs-file`` into ``NAME=value`` lines for ``$GITHUB_ENV``.

    python scripts/cdk_outputs.py cdk-outputs.json >> "$GITHUB_ENV"

The outputs file is ``{stack name: {output key: value}}``. An output key is the
CfnOutput's logical id, which CDK may suffix with a hash when the output is
declared inside a construct, so keys match by prefix. Exits 1 with one line
naming what is missing (and what there is) when a required output is absent.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence

REQUIRED: Mapping[str, str] = {
    "API_URL": "ApiUrl",
    "TRAINING_IMAGE_REPOSITORY_URI": "TrainingImageRepositoryUri",
    "TRAINING_JOB_QUEUE": "TrainingJobQueue",
    "TRAINING_JOB_DEFINITION": "TrainingJobDefinition",
    "MODEL_STORE_BUCKET": "ModelStoreBucket",  # first deploy: is data/ still empty?
}
"""Environment variable -> output key the deploy workflow cannot do without."""

OPTIONAL: Mapping[str, str] = {
    "API_KEY_ID": "ApiKeyId",  # absent when the stage's predict routes use IAM
}

_CDK_SUFFIX = re.compile(r"[0-9A-F]{8}$")


class MissingOutputError(Exception):
    pass


def _matches(key: str, wanted: str) -> bool:
    if key == wanted:
        return True
    return key.startswith(wanted) and bool(_CDK_SUFFIX.fullmatch(key[len(wanted) :]))


def find_outputs(
    outputs: Mapping[str, Mapping[str, str]],
    *,
    required: Mapping[str, str] = REQUIRED,
    optional: Mapping[str, str] = OPTIONAL,
) -> dict[str, str]:
    """Map env var names to output values; raise naming any missing required key."""
    flat = [(key, value) for stack in outputs.values() for key, value in stack.items()]
    found: dict[str, str] = {}
    missing = []
    for name, wanted in {**required, **optional}.items():
        values = [value for key, value in flat if _matches(key, wanted)]
        if len(values) > 1:
            raise MissingOutputError(f"output {wanted} is ambiguous: {len(values)} stacks have it")
        if values:
            found[name] = values[0]
        elif name in required:
            missing.append(wanted)
    if missing:
        available = ", ".join(sorted(key for key, _ in flat)) or "none"
        raise MissingOutputError(
            f"missing stack output(s) {', '.join(missing)}; outputs present: {available}"
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: cdk_outputs.py OUTPUTS_FILE", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as handle:
            outputs = json.load(handle)
        found = find_outputs(outputs)
    except (OSError, ValueError) as exc:
        print(f"cdk_outputs: cannot read {args[0]}: {exc}", file=sys.stderr)
        return 2
    except MissingOutputError as exc:
        print(f"cdk_outputs: {exc}", file=sys.stderr)
        return 1
    for name, value in found.items():
        if "\n" in value:  # would inject extra lines into $GITHUB_ENV
            print(f"cdk_outputs: output for {name} spans lines", file=sys.stderr)
            return 1
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
