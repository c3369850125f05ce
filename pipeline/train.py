"""Stage 2: train a head on a store's features and write a self-contained run directory.

Keras heads follow the reference protocol (design.md section 8): Adam, batch 128, learning-rate
stages of up to 20 epochs each, the best weights reloaded before each stage, early stopping with
patience 5 on the validation loss. Each epoch sees every training image once through one view drawn
at random; validation uses one fixed view per image; test predictions are made for every stored
view and averaged.
"""
from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from evaluation.metrics import mos_from_distribution, score_metrics, threshold_for_scale
from features import store as st
from features.loader import FeatureReader, fixed_views, make_dataset, train_plan
from heads import HeadMismatchError, get_head
from heads.baselines import MAX_RBF_ROWS
from heads.losses import get_loss


class TrainError(ValueError):
    """A run that cannot start: store, splits or settings; the message says what to do."""


@dataclass
class TrainConfig:
    store: str
    head: str
    run_dir: Optional[str] = None
    kind: Optional[str] = None
    seed: int = 0
    batch_size: int = 128
    lr_stages: Optional[List[float]] = None
    max_epochs: int = 20
    patience: int = 5
    cache: str = "auto"
    parallel_reads: int = 4
    max_train_rows: int = MAX_RBF_ROWS


@dataclass
class TrainResult:
    run_dir: str
    metrics: dict
    seconds: float
    history: Dict[str, list] = field(default_factory=dict)


def _split_rows(fs: st.FeatureStore, target: str) -> Dict[str, np.ndarray]:
    usable = fs.status == st.DONE
    if target == "dist":
        hist = fs.hist
        usable &= np.isfinite(hist).all(axis=1) & (hist.sum(axis=1) > 0)
    else:
        usable &= np.isfinite(fs.mos)
    split = fs.split
    rows = {s: np.flatnonzero(usable & (split == s)) for s in ("train", "val", "test")}
    for s in ("train", "val"):
        if not len(rows[s]):
            raise TrainError(
                f"store {fs.path} has no usable {s!r} images (done, labelled). Splits in the store: "
                f"{dict(zip(*np.unique(split, return_counts=True)))}")
    return rows


def _targets(fs: st.FeatureStore, rows: np.ndarray, target: str, threshold: float) -> np.ndarray:
    if target == "dist":
        h = fs.hist[rows].astype(np.float64)
        return (h / h.sum(axis=1, keepdims=True)).astype(np.float32)
    if target == "binary":
        return (fs.mos[rows] > threshold).astype(np.float32)
    return fs.mos[rows].astype(np.float32)


def _blocks(attrs: dict):
    return [(b["name"], b["offset"], b["offset"] + b["channels"]) for b in attrs.get("blocks", [])]


def _set_seeds(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # older TF or already set
        pass


def _mixed_precision_if_gpu() -> bool:
    import keras
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
        return True
    keras.mixed_precision.set_global_policy("float32")
    return False


def build_head_model(head_name: str, input_shape: Sequence[int], n_bins: int = 0, blocks=()):
    spec = get_head(head_name)
    if spec.family != "keras":
        raise TrainError(f"head {head_name!r} is a scikit-learn baseline, not a Keras model")
    return spec.build(tuple(input_shape), n_bins, blocks)


def init_output_bias(model, train_targets: np.ndarray, loss: str) -> None:
    """Starts the output layer at the training mean (log-mean for softmax): the reference's zero bias
    spends the first epochs learning the mean score, which small sets never finish doing."""
    out = model.layers[-1]
    if not hasattr(out, "bias") or out.bias is None:
        return
    mean = np.asarray(train_targets, np.float64).reshape(len(train_targets), -1).mean(axis=0)
    bias = np.log(np.clip(mean, 1e-6, None)) if loss == "emd" else mean
    out.bias.assign(bias.astype(np.float32).reshape(out.bias.shape))


def _train_keras(cfg: TrainConfig, spec, fs, kind, rows, targets, run_dir: Path, log) -> dict:
    import keras

    mixed = _mixed_precision_if_gpu()
    _set_seeds(cfg.seed)
    shape = tuple(fs.attrs["kinds"][kind]["shape"])
    n_bins = fs.hist.shape[1] if spec.target == "dist" else 0
    model = spec.build(shape, n_bins, _blocks(fs.attrs))
    init_output_bias(model, targets["train"], spec.loss)
    if mixed:
        model = keras.Model(model.input, keras.layers.Activation("linear", dtype="float32", name="out_f32")(model.output))
    train_reader = FeatureReader(fs, kind, rows["train"], cfg.cache)
    val_reader = FeatureReader(fs, kind, rows["val"], "auto" if cfg.cache == "auto" else cfg.cache)
    n_train, n_val, V = len(rows["train"]), len(rows["val"]), train_reader.n_views
    val_views = fixed_views(n_val, V, cfg.seed)
    val_ds = make_dataset(val_reader, np.arange(n_val), val_views, targets["val"], cfg.batch_size,
                          cfg.parallel_reads)
    stages = list(cfg.lr_stages or spec.lr_stages)
    log(f"training {spec.name} on {kind} {shape}: {n_train} train / {n_val} val images x {V} views, "
        f"reader {train_reader.mode}, lr stages {stages}, {model.count_params():,} parameters")
    tb = keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False)
    history: Dict[str, list] = {"epoch": [], "stage": [], "lr": [], "loss": [], "val_loss": [], "seconds": [],
                                "samples_per_s": []}
    best_loss, best_weights, epoch = np.inf, model.get_weights(), 0
    for stage, lr in enumerate(stages):
        model.set_weights(best_weights)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=get_loss(spec.loss))
        since_best = 0
        for _ in range(cfg.max_epochs):
            order, views = train_plan(n_train, V, cfg.seed, epoch)
            train_ds = make_dataset(train_reader, order, views, targets["train"][order], cfg.batch_size,
                                    cfg.parallel_reads)
            t0 = time.perf_counter()
            h = model.fit(train_ds, validation_data=val_ds, epochs=epoch + 1, initial_epoch=epoch,
                          shuffle=False, verbose=0, callbacks=[tb])
            dt = time.perf_counter() - t0
            loss, val_loss = float(h.history["loss"][-1]), float(h.history["val_loss"][-1])
            for key, value in (("epoch", epoch + 1), ("stage", stage + 1), ("lr", lr), ("loss", loss),
                               ("val_loss", val_loss), ("seconds", dt), ("samples_per_s", n_train / dt)):
                history[key].append(value)
            improved = val_loss < best_loss
            if improved:
                best_loss, best_weights, since_best = val_loss, model.get_weights(), 0
            else:
                since_best += 1
            log(f"  stage {stage + 1}/{len(stages)} lr {lr:g} epoch {epoch + 1}: loss {loss:.4f} "
                f"val {val_loss:.4f}{' *' if improved else ''}  {n_train / dt:,.0f} samples/s, {dt:.1f} s")
            epoch += 1
            if since_best >= cfg.patience:
                break
    model.set_weights(best_weights)
    model.save(run_dir / "model.keras")
    test_reader = FeatureReader(fs, kind, rows["test"], cfg.cache) if len(rows["test"]) else None
    per_view = None
    if test_reader is not None:
        n_test = len(rows["test"])
        outs = []
        for v in range(V):
            ds = make_dataset(test_reader, np.arange(n_test), np.full(n_test, v), None, cfg.batch_size,
                              cfg.parallel_reads).map(lambda x, y: x)
            outs.append(model.predict(ds, verbose=0))
        per_view = np.stack(outs, axis=1)  # (n_test, V, out)
    return {"history": history, "per_view": per_view, "params": int(model.count_params()),
            "reader_mode": train_reader.mode, "best_val_loss": float(best_loss)}


def _train_sklearn(cfg: TrainConfig, spec, fs, kind, rows, targets, run_dir: Path, log) -> dict:
    import joblib

    reader = FeatureReader(fs, kind, rows["train"], cfg.cache)
    n, V = len(rows["train"]), reader.n_views
    rng = np.random.default_rng(cfg.seed)
    if n * V <= cfg.max_train_rows:
        pos, views = np.repeat(np.arange(n), V), np.tile(np.arange(V), n)
    elif n <= cfg.max_train_rows or spec.name in ("svm_linear", "rf"):
        pos, views = np.arange(n), rng.integers(0, V, size=n)
    else:
        raise TrainError(
            f"{n:,} training images are too many for an RBF SVM (it would run for hours beyond about "
            f"{cfg.max_train_rows:,}); use --head svm_linear (linear SVR) or rf instead.")
    x = reader.read(pos, views).astype(np.float32).reshape(len(pos), -1)
    y = targets["train"][pos]
    log(f"training {spec.name} on {kind}: {len(pos):,} rows x {x.shape[1]:,} features")
    model = spec.build(cfg.seed)
    t0 = time.perf_counter()
    model.fit(x, y)
    log(f"  fitted in {time.perf_counter() - t0:.1f} s")
    path = run_dir / "model.joblib"
    joblib.dump(model, path)
    per_view = None
    if len(rows["test"]):
        test_reader = FeatureReader(fs, kind, rows["test"], cfg.cache)
        n_test = len(rows["test"])
        per_view = np.stack([
            model.predict(test_reader.read(np.arange(n_test), np.full(n_test, v)).astype(np.float32)
                          .reshape(n_test, -1)) for v in range(V)], axis=1)[..., None]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"history": {}, "per_view": per_view, "params": None, "reader_mode": reader.mode,
            "model_sha256": digest}


def load_sklearn_model(run_dir: str | Path):
    """Loads a baseline only if its file still has the sha256 recorded at training time."""
    import joblib

    run_dir = Path(run_dir)
    expected = json.loads((run_dir / "config.json").read_text())["model_sha256"]
    data = (run_dir / "model.joblib").read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        raise TrainError(f"{run_dir / 'model.joblib'} does not match the sha256 in config.json; refusing "
                         f"to unpickle a file that changed since training")
    return joblib.load(run_dir / "model.joblib")


def _write_predictions(run_dir: Path, ids, truth, per_view: np.ndarray, target: str, mean_pred) -> None:
    with open(run_dir / "predictions_per_view.csv", "w", newline="") as f:
        w = csv.writer(f)
        k = per_view.shape[-1]
        w.writerow(["id", "view"] + (["pred"] if k == 1 else [f"p{i + 1}" for i in range(k)]))
        for i, image_id in enumerate(ids):
            for v in range(per_view.shape[1]):
                w.writerow([image_id, v] + [f"{x:.6g}" for x in per_view[i, v]])
    with open(run_dir / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        dist = per_view.mean(axis=1) if target == "dist" else None
        w.writerow(["id", "true", "pred"] + ([f"p{i + 1}" for i in range(dist.shape[1])] if dist is not None else []))
        for i, image_id in enumerate(ids):
            extra = []
            if dist is not None:
                d = np.clip(dist[i], 0, None)
                extra = [f"{x:.6g}" for x in d / max(d.sum(), 1e-12)]
            w.writerow([image_id, f"{truth[i]:.6g}", f"{mean_pred[i]:.6g}"] + extra)


def run_train(cfg: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    t_start = time.time()
    spec = get_head(cfg.head)
    fs = st.FeatureStore(cfg.store)
    try:
        kind = spec.check_store(fs.kinds, fs.hist is not None, cfg.kind)
        scale = tuple(fs.attrs.get("dataset", {}).get("scale", (1.0, 10.0)))
        threshold = threshold_for_scale(scale)
        rows = _split_rows(fs, "dist" if spec.target == "dist" else "mos")
        targets = {s: _targets(fs, r, spec.target, threshold) for s, r in rows.items()}
        run_dir = Path(cfg.run_dir or f"runs/{Path(cfg.store).stem}_{spec.name}_seed{cfg.seed}")
        run_dir.mkdir(parents=True, exist_ok=True)
        config = {"train": asdict(cfg), "head": {"name": spec.name, "family": spec.family, "target": spec.target,
                                                  "loss": spec.loss, "description": spec.description,
                                                  "reference": spec.reference},
                  "kind": kind, "lr_stages": list(cfg.lr_stages or spec.lr_stages),
                  "store": {"path": str(Path(cfg.store).resolve()), "backbone": fs.attrs.get("backbone"),
                            "weights": fs.attrs.get("weights"), "settings": fs.attrs.get("settings"),
                            "view_set": fs.attrs.get("view_set")},
                  "splits": {s: int(len(r)) for s, r in rows.items()}, "threshold": threshold,
                  "scale": list(scale)}
        (run_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))
        trainer = _train_keras if spec.family == "keras" else _train_sklearn
        out = trainer(cfg, spec, fs, kind, rows, targets, run_dir, log)
        if "model_sha256" in out:
            config["model_sha256"] = out["model_sha256"]
        config["params"] = out["params"]
        config["reader_mode"] = out["reader_mode"]
        (run_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))
        history = out["history"]
        if history.get("epoch"):
            from evaluation.plots import training_curves

            with open(run_dir / "history.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(list(history))
                w.writerows(zip(*history.values()))
            training_curves(history, run_dir / "training_curves.png", f"{spec.name} on {kind}")
        metrics = {"head": spec.name, "kind": kind, "seconds": None}
        per_view = out["per_view"]
        if per_view is not None:
            test_rows = rows["test"]
            truth = fs.mos[test_rows]
            if spec.target == "dist":
                view_mos = mos_from_distribution(per_view)
                mean_pred = mos_from_distribution(per_view.mean(axis=1))
            elif spec.target == "binary":
                view_mos = per_view[..., 0]
                mean_pred = per_view[..., 0].mean(axis=1)
            else:
                view_mos = per_view[..., 0]
                mean_pred = view_mos.mean(axis=1)
            _write_predictions(run_dir, fs.ids[test_rows], truth, per_view, spec.target, mean_pred)
            if spec.target == "binary":
                metrics["test"] = {"n": int(len(truth)), "threshold": threshold,
                                   "accuracy": float(((truth > threshold) == (mean_pred > 0.5)).mean()),
                                   "high_fraction": float((truth > threshold).mean())}
            else:
                metrics["test"] = score_metrics(truth, mean_pred, threshold)
                metrics["test_per_view"] = [score_metrics(truth, view_mos[:, v], threshold)
                                            for v in range(view_mos.shape[1])]
        metrics["seconds"] = time.time() - t_start
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return TrainResult(str(run_dir), metrics, metrics["seconds"], history)
    except HeadMismatchError as exc:
        raise TrainError(f"store {cfg.store}: {exc}") from None
    finally:
        fs.close()
