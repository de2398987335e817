"""Trained models shared by the monitoring tests (trained once per session, in seconds)."""

from __future__ import annotations

import pytest

from tests.monitoring.support import Trained, repeated_decimals, train_model
from tests.training_support import mixed_classification, nonlinear_regression


@pytest.fixture(scope="session")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("regressor")
    return train_model(root, nonlinear_regression(rows=1500), target="y", model_name="reg")


@pytest.fixture(scope="session")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("classifier")
    return train_model(root, mixed_classification(rows=1500), target="label", model_name="cls")


@pytest.fixture(scope="session")
def decimals(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Features of repeated one-decimal values, several of which float32 rounds down (0.7,
    2.3): the case where binning live values as float64 flagged in-distribution traffic."""
    root = tmp_path_factory.mktemp("decimals")
    return train_model(root, repeated_decimals(rows=1500), target="y", model_name="dec")
