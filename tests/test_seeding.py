"""A Keras head's initial weights depend on its seed and its layers' names, never on creation order."""
import numpy as np
import pytest

from heads import create_head, get_head, list_heads
from heads.seeding import derived_seed, reseed_by_name

KERAS_HEADS = list_heads(trainer="keras")


def _two_layer_model(order):
    """The same three named layers, created in `order`, connected the same way."""
    import keras
    from keras import layers

    made = {}
    for name in order:
        made[name] = {"hidden": lambda: layers.Dense(8, activation="relu", kernel_initializer="he_normal",
                                                     name="hidden"),
                      "drop": lambda: layers.Dropout(0.5, name="drop"),
                      "score": lambda: layers.Dense(1, name="score")}[name]()
    inp = keras.Input((6,), name="features")
    return keras.Model(inp, made["score"](made["drop"](made["hidden"](inp))), name="probe")


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_layers_created_in_two_orders_start_the_same_once_reseeded():
    import keras

    keras.utils.set_random_seed(0)
    a = _two_layer_model(["hidden", "drop", "score"])
    keras.utils.set_random_seed(0)
    b = _two_layer_model(["score", "drop", "hidden"])
    assert any(not np.array_equal(x, y) for x, y in zip(_weights(a), _weights(b)))  # Keras' own draws moved
    assert sorted(reseed_by_name(a, 3)) == sorted(reseed_by_name(b, 3))
    for x, y in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(x, y)
    x = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    np.testing.assert_array_equal(a(x, training=True), b(x, training=True))  # the same dropout masks too


def test_another_seed_draws_other_weights_and_constants_stay():
    a, b = _two_layer_model(["hidden", "drop", "score"]), _two_layer_model(["hidden", "drop", "score"])
    reseed_by_name(a, 0)
    names = reseed_by_name(b, 1)
    assert names == ["hidden/kernel", "drop/seed_generator", "score/kernel"]
    assert not np.array_equal(a.get_layer("hidden").kernel, b.get_layer("hidden").kernel)
    np.testing.assert_array_equal(b.get_layer("hidden").bias, 0)  # zeros: nothing to redraw
    assert derived_seed(1, "hidden/kernel") == derived_seed(1, "hidden/kernel") != derived_seed(2, "hidden/kernel")


@pytest.mark.parametrize("head", KERAS_HEADS)
def test_every_keras_head_starts_from_its_seed_alone(head):
    """Built twice in one process after different global draws (auto-named layers would differ too)."""
    import keras

    spec = get_head(head)
    shape = (3, 3, 12) if spec.kinds == ("mlsp_wide",) else (12,)

    def build(global_seed):
        keras.utils.set_random_seed(global_seed)
        return create_head(head, input_shape=shape, n_bins=5, blocks=[("a", 0, 4), ("b", 4, 12)],
                           n_attributes=2, seed=7)

    first, second = _weights(build(0)), _weights(build(1))
    assert len(first) == len(second)
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
