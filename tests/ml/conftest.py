"""Tiny models on the shipped data (BTC/ETH, May 2025): trained once per session, in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from trader.data.store import bundled_data_dir
from trader.ml.registry import ModelRegistry
from trader.ml.training import TrainConfig, build_dataset, train_models
from trader.ml.xgb_model import XGBParams

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
START, END = 1746403200000, 1747612800000  # 2025-05-05 → 2025-05-19


def tiny_config(**kw) -> TrainConfig:
    base = dict(folds=2, epochs=1, units=8, stride=4, batch=512, seq_len={"gru": 8, "lstm": 8},
                xgb=XGBParams(rounds=30, early_stopping=10), permutation_rows=300)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def dataset():
    return build_dataset(bundled_data_dir(), [BTC, ETH], START, END)


@pytest.fixture(scope="session")
def xgb_models(tmp_path_factory, dataset) -> Path:
    """A registry with one active XGBoost reversal model."""
    root = tmp_path_factory.mktemp("models_xgb")
    train_models(dataset, ["xgb"], tiny_config(), ModelRegistry(root), activate="always")
    return root


@pytest.fixture(scope="session")
def gru_models(tmp_path_factory, dataset) -> Path:
    root = tmp_path_factory.mktemp("models_gru")
    train_models(dataset, ["gru", "xgb"], tiny_config(), ModelRegistry(root), activate="always")
    return root
