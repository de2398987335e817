#!/usr/bin/env python3
"""The mlsys CDK app: `npx cdk synth` / `cdk deploy`, or `python app.py` (same result).

This is the only place the CDK side reads configuration: every context value is read
once here, validated into typed objects (infra/config.py documents each key) and passed
to the stacks as keyword arguments. Synthesis makes no AWS calls and needs no Docker;
the Lambda code asset is the directory `make lambda-package` builds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import ContextError, config_from_context
from infra.serving import LambdaBundleMissingError
from infra.stacks import build_app

ROOT = Path(__file__).resolve().parent


def cdk_json_context() -> dict[str, object]:
    """cdk.json's context (defaults + feature flags), so `python app.py` synthesises
    exactly what the CDK CLI does; context the CLI passes still wins."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return dict(context)


def configure(app: App) -> None:
    """Validate the app's context, add the stacks and the cdk-nag checks (tests call this
    too, so what they synthesise is what `cdk deploy` synthesises)."""
    config = config_from_context(app.node.get_all_context())
    build_app(app, config=config, bundle_dir=ROOT / config.serving.lambda_bundle_dir)
    # cdk-nag's AWS Solutions pack runs at synth; an unacknowledged finding fails it.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def main() -> int:
    app = App(context=cdk_json_context())
    try:
        configure(app)
    except (ContextError, LambdaBundleMissingError) as exc:
        print(f"mlsys cdk: {exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
