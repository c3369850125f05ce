"""`iaa export`: a trained run as one model from image pixels to score, for serving without this package.

The exported graph is the run's own: the views cropped and flipped in the graph (the same boxes as
`features.augment.View.box`), the backbone, the pooling (`Extractor.pooled`), the float16 rounding the
store applied, the Keras head, and the mean over views (the expected bin of the mean histogram for
distribution heads). Input: one decoded RGB image, (H, W, 3) uint8, any size, after the run's
`--max-side` shrinking (decoding, EXIF orientation and that shrinking are the caller's job, as they
are the image library's). Output: `score` (1,) and, for distribution heads, `distribution` (1, K).

Formats: `saved_model` (TensorFlow SavedModel, signature `serving_default`; TF Serving, `tf.saved_model.load`),
`onnx` (converted from the same function by tf2onnx; onnxruntime runs it) and `keras` (a functional
`.keras` model of the same layers, for fine-tuning end to end; loading it needs this package, see
`pipeline.scoring.export_layers`). scikit-learn heads have no graph to export: they are refused.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Tuple

import numpy as np

from features.core.errors import UsageError
from features.pooling import get_kind
from features.resize import resize_input
from pipeline.extraction.worker import get_extractor
from pipeline.scoring.predictor import Predictor

FORMATS = ("saved_model", "onnx", "keras")
ONNX_OPSET = 17
TOLERANCE = 1e-3  # of the score scale (of the bin range for distribution heads)


class ExportError(UsageError):
    """A run that cannot be exported in the asked format."""


def scoring_module(predictor: Predictor):
    """A tf.Module whose `score(image)` is the run's score of one decoded image."""
    import tensorflow as tf

    from pipeline.scoring import export_layers

    if predictor.head.trainer != "keras":
        raise ExportError(f"{predictor.head.name} is a scikit-learn head: there is no graph to export. Score with "
                          f"`iaa score`, or export a Keras head's run")
    job, kind = predictor.single_source("export")
    extractor = get_extractor(job)
    head, views, dist = predictor.model, job.views, predictor.dist

    class RunScorer(tf.Module):
        def __init__(self):
            super().__init__(name="run_scorer")
            self.extractor_models = extractor.models
            self.head = head

        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
        def score(self, image):
            x = tf.cast(export_layers.crop_views(image, views), tf.float32)
            feats = tf.cast(tf.cast(extractor.pooled(x)[kind], tf.float16), tf.float32)  # as stored
            out = tf.reduce_mean(tf.cast(head(feats, training=False), tf.float32), axis=0, keepdims=True)
            if not dist:
                return {"score": out[:, 0]}
            p = tf.nn.relu(out)
            p = p / tf.maximum(tf.reduce_sum(p, axis=-1, keepdims=True), 1e-12)
            bins = tf.range(1, p.shape[-1] + 1, dtype=tf.float32)
            return {"score": tf.reduce_sum(p * bins, axis=-1), "distribution": p}

    return RunScorer()


def export_run(predictor: Predictor, fmt: str, out: str | Path, check_image: np.ndarray | None = None) -> dict:
    """Writes the run's image-to-score model in `fmt` to `out`, then checks it: the exported model's score
    of a photo must equal `iaa score`'s within `TOLERANCE` of the score scale, else the file is removed
    and the export refused (a converter that approximates an op must not ship a different model).

    Args:
        check_image: the decoded photo to compare on (default: a fixed synthetic 320x240 photo).
    Returns:
        {"path", "score" (iaa score), "exported_score", "difference", "tolerance"}.
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}; received {fmt!r}")
    module = scoring_module(predictor)
    out = Path(out)
    _write(module, predictor, fmt, out)
    # the exported graph starts after the run's --resize rule (idempotent, so iaa score agrees on this image)
    image = resize_input(probe_image() if check_image is None else check_image, predictor.job.resize)
    expected = predictor.score_arrays([image], ["check"])
    try:
        got, _ = run_exported(out, fmt, image)
    except Exception as exc:  # noqa: BLE001  (a converted model that does not load is refused, in one line)
        shutil.rmtree(out) if out.is_dir() else out.unlink()
        raise ExportError(f"the {fmt} model written for {predictor.head.name} does not run: "
                          f"{str(exc).splitlines()[0][:300]}; not written") from None
    lo, hi = predictor.run.config.get("scale") or (0.0, 1.0)
    tolerance = TOLERANCE * (hi - lo) if not predictor.dist else TOLERANCE * 10
    report = {"path": str(out), "score": float(expected.score[0]), "exported_score": got,
              "difference": abs(got - float(expected.score[0])), "tolerance": tolerance}
    if not report["difference"] <= tolerance:
        shutil.rmtree(out) if out.is_dir() else out.unlink()
        raise ExportError(f"the {fmt} model scores the check photo {got:.5f}, `iaa score` {report['score']:.5f} "
                          f"(difference {report['difference']:.2g} > {tolerance:.2g}); not written. The converter "
                          f"approximates an op of {predictor.kind} (ONNX has no area resizing for wide kinds): "
                          f"export saved_model instead")
    return report


def keras_model(predictor: Predictor):
    """The run's graph as a functional Keras model: (1, H, W, 3) uint8 → (1, 1) score, or (1, 1 + K) score
    and histogram for distribution heads (layers of `pipeline.scoring.export_layers`)."""
    import keras

    from pipeline.scoring.export_layers import CropViews, MeanOverViews, PoolKind, Preprocess

    job, pooled = predictor.single_source("export")
    kind = get_kind(pooled)
    if kind.source == "fc7":
        raise ExportError("fc7 runs are exported as saved_model or onnx only (the fc7 pass resizes to 224x224 "
                          "through VGG16's dense top, which has no layer here)")
    spec = job.backbone
    model, names = get_extractor(job).block_model
    image = keras.Input((None, None, 3), batch_size=1, dtype="uint8", name="image")
    x = CropViews([v.to_dict() for v in job.views], name="views")(image)
    maps = model(Preprocess(spec.preprocessing, name="preprocess")(x))
    by_name = dict(zip(names, maps if isinstance(maps, (list, tuple)) else [maps]))
    source = [by_name[b] for b in spec.blocks] if kind.source == "blocks" else by_name[spec.last_block]
    out = predictor.model(PoolKind(pooled, name="pool")(source))
    return keras.Model(image, MeanOverViews(predictor.dist, name="score")(out), name="image_to_score")


def _log1p_as_log(ctx, node, name, args):
    """tf2onnx handler: ONNX has no Log1p; log(1 + x) is the same to float32 rounding (its input is |x| here)."""
    from tf2onnx import utils

    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1.0, np.float32)).output[0]
    plus = ctx.make_node("Add", [node.input[0], one], op_name_scope=node.name)
    ctx.replace_input(node, node.input[0], plus.output[0], 0)
    node.type = "Log"


def probe_image() -> np.ndarray:
    """A fixed, smooth synthetic 320x240 RGB photo (the same on every machine)."""
    import cv2

    small = np.random.default_rng(12345).integers(0, 256, size=(30, 40, 3)).astype(np.uint8)
    return cv2.resize(small, (320, 240), interpolation=cv2.INTER_LINEAR)


def _write(module, predictor: Predictor, fmt: str, out: Path) -> None:
    import tensorflow as tf

    if fmt == "saved_model":
        tf.saved_model.save(module, str(out), signatures={"serving_default": module.score})
        return
    if fmt == "keras":
        if out.suffix != ".keras":
            raise ExportError(f"--format keras writes a .keras file; received --out {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        keras_model(predictor).save(out)
        return
    if not get_kind(predictor.single_source("export")[1]).onnx_exact:
        raise ExportError(f"{predictor.kind} pools with a resize ONNX has no exact op for (tf2onnx approximates "
                          f"it: the demo's pool3fc moved by 0.1 on a photo); export --format saved_model")
    try:
        import tf2onnx
    except ImportError:
        raise ExportError("ONNX export needs tf2onnx: pip install tf2onnx onnxruntime") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Frozen first: from_function leaves some Keras variables (the input normalisation's) as graph inputs.
    concrete = module.score.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    outputs = [t.name for t in frozen.outputs]
    names = sorted(concrete.structured_outputs)  # the order tf.nest flattens the output dict in
    try:
        tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=[frozen.inputs[0].name],
                                       output_names=outputs, opset=ONNX_OPSET, output_path=str(out),
                                       custom_op_handlers={"Log1p": (_log1p_as_log, [])})
    except Exception as exc:  # noqa: BLE001  (converter errors name the op; the user gets one line)
        raise ExportError(f"tf2onnx could not convert {predictor.kind} + {predictor.head.name}: "
                          f"{str(exc).splitlines()[0][:300]}") from None
    _rename_onnx_io(out, {frozen.inputs[0].name: "image", **dict(zip(outputs, names))})


def _rename_onnx_io(path: Path, mapping: dict) -> None:
    """Gives the ONNX graph's input and outputs the SavedModel's names (image; score, distribution)."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for value in list(model.graph.input) + list(model.graph.output):
        value.name = mapping.get(value.name, value.name)
    onnx.save(model, str(path))


def run_exported(path: str | Path, fmt: str, image: np.ndarray) -> Tuple[float, np.ndarray | None]:
    """(score, distribution or None) of one decoded image through an exported model (checks and tests)."""
    if fmt == "keras":
        import keras

        import pipeline.scoring.export_layers  # noqa: F401  (registers the layers)

        out = keras.saving.load_model(str(path), compile=False).predict_on_batch(image[None])
        return float(out[0, 0]), (out[0, 1:] if out.shape[-1] > 1 else None)
    if fmt == "saved_model":
        import tensorflow as tf

        out = tf.saved_model.load(str(path)).signatures["serving_default"](image=tf.constant(image))
        return float(out["score"].numpy()[0]), (out["distribution"].numpy()[0] if "distribution" in out else None)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(None, {"image": image})))
    dist = values.get("distribution")
    return float(np.asarray(values["score"]).ravel()[0]), (None if dist is None else np.asarray(dist)[0])
