"""Initialisation that does not depend on the order layers were created in.

Keras draws every unseeded initialiser and every dropout mask seed from one global generator, so a
head's starting weights depend on how many random draws came before each layer: a refactor that builds
the same layers in another order, or a second head built first in the same process, changes every
figure. `reseed_by_name` redraws each randomly initialised variable with an initialiser seeded from
the run's seed and the variable's place in the model (its layers' names), and reseeds each layer's
dropout generator the same way, so a head's start is a function of (seed, layer names) alone.
"""
from __future__ import annotations

import zlib
from typing import List

SUFFIX = "_initializer"


def derived_seed(seed: int, name: str) -> int:
    """A 31-bit seed from the run's seed and a name (stable across processes and platforms)."""
    return zlib.crc32(f"{int(seed)}:{name}".encode()) & 0x7FFFFFFF


def _sublayers(layer) -> list:
    return list(getattr(layer, "layers", None) or [])


def _reseed_layer(layer, seed: int, where: str, done: List[str]) -> None:
    import keras

    for attr, init in list(vars(layer).items()):
        if not (attr.endswith(SUFFIX) and isinstance(init, keras.initializers.Initializer)):
            continue
        variable = getattr(layer, attr[:-len(SUFFIX)], None)
        config = init.get_config()
        if not isinstance(variable, keras.Variable) or "seed" not in config:
            continue  # constant initialisers (zeros, ones) do not depend on order
        name = f"{where}/{attr[:-len(SUFFIX)]}"
        fresh = type(init).from_config({**config, "seed": derived_seed(seed, name)})
        variable.assign(fresh(variable.shape, variable.dtype))
        done.append(name)
    generator = getattr(layer, "seed_generator", None)
    if isinstance(generator, keras.random.SeedGenerator):
        state = generator.state
        name = f"{where}/seed_generator"
        state.assign(keras.ops.convert_to_tensor([derived_seed(seed, name), 0], dtype=state.dtype))
        done.append(name)


def reseed_by_name(model, seed: int) -> List[str]:
    """Redraws `model`'s random initial weights and dropout seeds from `seed` and layer names (in place).

    Args:
        model: a built Keras model (nested models are walked; their layers are named under theirs).
        seed: the run's seed.
    Returns:
        The names (`<layer path>/<variable>`) that were redrawn, in model order.
    Raises:
        ValueError: two layers at one place share a name (their draws would coincide).
    """
    done: List[str] = []

    def walk(layer, where: str) -> None:
        _reseed_layer(layer, seed, where, done)
        names = [sub.name for sub in _sublayers(layer)]
        if len(names) != len(set(names)):
            raise ValueError(f"model {layer.name!r} has layers sharing a name; every layer needs its own name "
                             f"for name-seeded initialisation")
        for sub in _sublayers(layer):
            walk(sub, f"{where}/{sub.name}" if where else sub.name)

    walk(model, "")
    return done
