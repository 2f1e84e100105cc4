"""GRU and LSTM multi-horizon direction classifiers (TensorFlow/Keras 3). Importing this module imports
TensorFlow (5–9 s, ~650 MB): only training and a predictor holding a neural model do.

Input: the last ``seq_len`` rows of scaled features (windows never cross a segment: see ``windows``). One softmax
head (down/flat/up) per horizon. Class-balanced sample weights per head, early stopping on the validation window
with the best weights restored, fixed seeds (``keras.utils.set_random_seed``) and one intra-op thread.
Single-sample inference goes through a ``tf.function`` with a fixed input signature (≈ 1–5 ms), never
``model.predict`` (≈ 150 ms per call).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from trader.ml.xgb_model import class_weights  # noqa: E402

tf.get_logger().setLevel("ERROR")  # a shorter last batch retraces predict_on_batch once; not worth a warning

MODEL_FILE = "model.keras"
_threads_set = False


def limit_threads(n: int = 1) -> None:
    global _threads_set
    if _threads_set:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # already initialised by someone else: leave it
        pass
    _threads_set = True


@dataclass(frozen=True)
class NetParams:
    kind: str = "gru"  # gru | lstm
    seq_len: int = 24
    units: int = 32
    dropout: float = 0.2
    lr: float = 1e-3
    batch: int = 256
    epochs: int = 20
    patience: int = 3
    stride: int = 1  # train on every stride-th row (neighbouring windows are almost the same sample)
    seed: int = 0


def windows(n_rows: int, seq_ok: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows`` whose window of the previous seq_len − 1 rows stays inside one segment (``seq_ok``)."""
    rows = np.asarray(rows)
    return rows[seq_ok[rows]]


def gather(Z: np.ndarray, rows: np.ndarray, seq_len: int) -> np.ndarray:
    """(len(rows), seq_len, F) windows ending at ``rows`` from the scaled matrix ``Z``."""
    idx = rows[:, None] + np.arange(-seq_len + 1, 1)[None, :]
    return Z[idx]


class _Windows(keras.utils.PyDataset):
    def __init__(self, Z: np.ndarray, rows: np.ndarray, ys: dict[str, np.ndarray], seq_len: int, batch: int,
                 shuffle: bool, seed: int):
        super().__init__()
        self.Z, self.rows, self.seq_len, self.batch, self.shuffle = Z, rows, seq_len, batch, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = rows.copy()
        self.ys = {k: v for k, v in ys.items()}
        n_classes = 3
        self.ws = {k: class_weights(v, n_classes).astype("float32") for k, v in ys.items()}
        if shuffle:
            self.rng.shuffle(self.order)

    def __len__(self) -> int:
        return max(1, int(np.ceil(len(self.order) / self.batch)))

    def __getitem__(self, i: int):
        r = self.order[i * self.batch:(i + 1) * self.batch]
        x = gather(self.Z, r, self.seq_len)
        y = {k: np.maximum(v[r], 0) for k, v in self.ys.items()}
        w = {k: v[r] for k, v in self.ws.items()}
        return x, y, w

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)


def build(n_features: int, heads: list[str], p: NetParams) -> keras.Model:
    inp = keras.Input((p.seq_len, n_features), name="x")
    layer = keras.layers.GRU if p.kind == "gru" else keras.layers.LSTM
    h = layer(p.units, name=p.kind)(inp)
    h = keras.layers.Dropout(p.dropout, seed=p.seed)(h)
    out = {name: keras.layers.Dense(3, activation="softmax", name=name)(h) for name in heads}
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(p.lr), loss={k: "sparse_categorical_crossentropy" for k in heads})
    return model


class NetModel:
    """A fitted network and its heads (``dir_<minutes>``)."""

    def __init__(self, model: keras.Model, heads: list[str], params: NetParams, history: dict[str, Any] | None = None):
        self.model = model
        self.heads = heads
        self.params = params
        self.history = history or {}
        self.kind = params.kind
        self._fn: Callable | None = None

    @classmethod
    def fit(cls, Z: np.ndarray, fit_rows: np.ndarray, val_rows: np.ndarray, ys: dict[str, np.ndarray],
            params: NetParams, init: NetModel | None = None, epochs: int | None = None,
            on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> NetModel:
        limit_threads(1)
        keras.utils.set_random_seed(params.seed)
        heads = list(ys)
        model = init.model if init else build(Z.shape[1], heads, params)
        fit_rows = fit_rows[:: max(1, params.stride)]
        train = _Windows(Z, fit_rows, ys, params.seq_len, params.batch, True, params.seed)
        val = _Windows(Z, val_rows, ys, params.seq_len, 1024, False, params.seed) if len(val_rows) else None
        callbacks: list[Any] = []
        if val is not None:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=params.patience,
                                                           restore_best_weights=True))
        if on_epoch:
            callbacks.append(keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: on_epoch(e, {k: float(v) for k, v in (logs or {}).items()})))
        hist = model.fit(train, validation_data=val, epochs=epochs or params.epochs, verbose=0, callbacks=callbacks)
        return cls(model, heads, params, {k: [float(x) for x in v] for k, v in hist.history.items()})

    def predict_proba(self, Z: np.ndarray, rows: np.ndarray, batch: int = 2048) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {h: [] for h in self.heads}
        for a in range(0, len(rows), batch):
            res = self.model.predict_on_batch(gather(Z, rows[a:a + batch], self.params.seq_len))
            for h in self.heads:
                out[h].append(np.asarray(res[h], dtype="float64"))
        return {h: (np.concatenate(v) if v else np.zeros((0, 3))) for h, v in out.items()}

    def predict_window(self, window: np.ndarray) -> dict[str, np.ndarray]:
        """One (seq_len, F) window → head → (3,) probabilities, through a compiled tf.function."""
        if self._fn is None:
            limit_threads(1)
            model = self.model
            spec = tf.TensorSpec((1, self.params.seq_len, window.shape[-1]), tf.float32)
            self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True)
        res = self._fn(tf.constant(window[None, :, :], dtype=tf.float32))
        return {h: res[h].numpy()[0].astype("float64") for h in self.heads}

    def save(self, directory: Path) -> list[str]:
        self.model.save(str(Path(directory) / MODEL_FILE))
        return [MODEL_FILE]

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> NetModel:
        limit_threads(1)
        model = keras.models.load_model(str(Path(directory) / MODEL_FILE), compile=True)
        return cls(model, list(meta["heads"]), NetParams(**meta["params"]))

    def params_dict(self) -> dict[str, Any]:
        return asdict(self.params)
