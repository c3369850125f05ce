"""Keras models around the training loop: seeding, precision, prediction over views, seed averaging and
loading a run's model with the heads' layers registered."""
from __future__ import annotations

import numpy as np

from evaluation.rundir import RunDir
from features.loader import FeatureReader, make_dataset


def set_seeds(seed: int) -> None:
    """Seeds Python, NumPy, TF and Keras and makes TF ops deterministic (seeded runs reproduce on CPU)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def mixed_precision_if_gpu() -> bool:
    """Sets Keras' global policy to mixed_float16 when a GPU is visible (float32 on CPU); returns whether it did."""
    import keras
    import tensorflow as tf

    mixed = bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    return mixed


def predict_keras(model, x) -> np.ndarray:
    """(m, out) float32 outputs of a Keras head for one batch of features."""
    return np.asarray(model.predict_on_batch(x), np.float32)


def predict_views(models: list, reader: FeatureReader, batch_size: int, parallel: int) -> list:
    """(n, V, out) predictions of every model for every view, reading each batch once."""
    n = len(reader.rows)
    outs = [[] for _ in models]
    for v in range(reader.n_views):
        parts = [[] for _ in models]
        for x, _ in make_dataset(reader, np.arange(n), np.full(n, v), None, batch_size, parallel):
            for j, m in enumerate(models):
                parts[j].append(predict_keras(m, x))
        for j in range(len(models)):
            outs[j].append(np.concatenate(parts[j]) if parts[j] else np.zeros((0, 1), np.float32))
    return [np.stack(o, axis=1) for o in outs]


def average_keras(models: list):
    """One functional model: every member on the same input, their outputs averaged (members nested under
    `seed_member<i>`, so gradients, export and the server see one ordinary Keras model)."""
    import keras

    inp = keras.Input(tuple(models[0].input_shape[1:]), name="features")
    outs = [keras.Model(m.input, m.output, name=f"seed_member{i}")(inp) for i, m in enumerate(models)]
    mean = keras.layers.Average(name="seed_mean", dtype="float32")(outs) if len(outs) > 1 else outs[0]
    return keras.Model(inp, mean, name=models[0].name)


def load_keras_head(run: RunDir):
    """A run's Keras head; the heads' own layers are registered first so that safe loading knows them."""
    import heads.layers  # noqa: F401  (registers the serialisable layers)

    return run.load_keras()
