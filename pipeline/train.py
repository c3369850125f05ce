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

from evaluation.metrics import mos_from_distribution, threshold_for_scale
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


def _split_rows(fs: st.FeatureStore, targets: set) -> Dict[str, np.ndarray]:
    """Rows per split that are done and carry every label the given targets need."""
    usable = fs.status == st.DONE
    if targets & {"mos", "binary"}:
        usable &= np.isfinite(fs.mos)
    if "dist" in targets:
        hist = fs.hist
        usable &= np.isfinite(hist).all(axis=1) & (hist.sum(axis=1) > 0)
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


def _target_block(fs: st.FeatureStore, rows: np.ndarray, target: str, threshold: float) -> np.ndarray:
    """Targets as an (n, columns) matrix; an empty split keeps its column count."""
    t = _targets(fs, rows, target, threshold)
    return t[:, None] if t.ndim == 1 else t


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


def _on_score_scale(model, train_scores: np.ndarray):
    """Appends score = mean + std * output (training-split statistics, saved with the model).

    The head itself then works in standard units whatever the dataset's scale (AVA 1-10, AADB 0-1,
    KonIQ 0-100): with dropout and batch normalisation its initial output spread is about 1, which
    swamps a 0-1 target's spread of about 0.15 and leaves wide heads at low learning rates unable to
    fit. The loss is still the MSE on the dataset's own scale.
    """
    import keras

    y = np.asarray(train_scores, np.float64).ravel()
    mean, std = float(y.mean()), float(y.std())
    if not std > 0:
        raise TrainError(f"all {len(y)} training scores equal {mean:g}; a head cannot learn a ranking from them")
    out = keras.layers.Rescaling(scale=std, offset=mean, dtype="float32", name="to_score_scale")(model.output)
    return keras.Model(model.input, out, name=model.name)


def _score_scale(model) -> Optional[dict]:
    try:
        c = model.get_layer("to_score_scale").get_config()
    except ValueError:
        return None
    return {"mean": c["offset"], "std": c["scale"]}


@dataclass
class _HeadState:
    """One Keras head inside a (possibly joint) fit: its own optimiser, stages and early stopping."""

    spec: object
    model: object
    stages: List[float]
    writer: object
    stage: int = 0
    epochs_in_stage: int = 0
    since_best: int = 0
    best_loss: float = np.inf
    best_weights: list = field(default_factory=list)
    active: bool = True
    columns: slice = field(default_factory=lambda: slice(None))
    history: Dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})

    def compile(self, lr: float) -> None:
        import keras

        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=get_loss(self.spec.loss))
        self.model.optimizer.build(self.model.trainable_variables)  # its slots must exist before tracing


def _joint_train_step(heads: List[_HeadState], x_shape: tuple, n_targets: int):
    """One traced function that runs every head's own `train_step` on the same batch: a single
    dispatch per batch however many heads there are (Keras' `train_on_batch` costs milliseconds of
    Python per call and head, more than a small head's arithmetic)."""
    import tensorflow as tf

    models, columns = [h.model for h in heads], [h.columns for h in heads]

    @tf.function(input_signature=[tf.TensorSpec((None,) + tuple(x_shape), tf.float32),
                                  tf.TensorSpec((None, n_targets), tf.float32)])
    def step(x, y):
        for model, cols in zip(models, columns):
            model.train_step((x, y[:, cols]))

    return step


HISTORY_KEYS = ("epoch", "stage", "lr", "loss", "val_loss", "seconds", "samples_per_s")


def _batch_loss(spec, y, pred) -> np.ndarray:
    fn = get_loss(spec.loss)
    if fn == "mse":
        return np.mean((np.asarray(pred, np.float64) - np.asarray(y, np.float64)) ** 2, axis=-1)
    return np.asarray(fn(np.asarray(y, np.float32), np.asarray(pred, np.float32)))


def predict_views(models: list, reader: FeatureReader, batch_size: int, parallel: int) -> list:
    """(n, V, out) predictions of every model for every view, reading each batch once."""
    n = len(reader.rows)
    outs = [[] for _ in models]
    for v in range(reader.n_views):
        parts = [[] for _ in models]
        for x, _ in make_dataset(reader, np.arange(n), np.full(n, v), None, batch_size, parallel):
            for j, m in enumerate(models):
                parts[j].append(np.asarray(m.predict_on_batch(x), np.float32))
        for j in range(len(models)):
            outs[j].append(np.concatenate(parts[j]) if parts[j] else np.zeros((0, 1), np.float32))
    return [np.stack(o, axis=1) for o in outs]


def fit_keras_heads(cfg: TrainConfig, specs: list, fs, kind: str, rows: dict, targets: dict,
                    run_dirs: List[Path], log, columns: Optional[List[slice]] = None) -> List[dict]:
    """Trains Keras heads that share a feature kind together: each batch is read once and fed to
    every head; losses, optimisers, learning-rate stages and early stopping stay per head.

    `targets[split]` is one (n, T) matrix; head j learns its columns `columns[j]` (all by default).
    """
    import keras
    import tensorflow as tf

    mixed = _mixed_precision_if_gpu()
    shape = tuple(fs.attrs["kinds"][kind]["shape"])
    n_bins = fs.hist.shape[1] if fs.hist is not None else 0
    columns = columns or [slice(None)] * len(specs)
    heads: List[_HeadState] = []
    for spec, run_dir, cols in zip(specs, run_dirs, columns):
        _set_seeds(cfg.seed)  # every head starts as it would alone
        model = spec.build(shape, n_bins if spec.target == "dist" else 0, _blocks(fs.attrs))
        if mixed:
            out = keras.layers.Activation("linear", dtype="float32", name="out_f32")(model.output)
            model = keras.Model(model.input, out)
        if spec.target == "mos":
            model = _on_score_scale(model, targets["train"][:, cols])
        else:
            init_output_bias(model, targets["train"][:, cols], spec.loss)
        state = _HeadState(spec, model, list(cfg.lr_stages or spec.lr_stages),
                           tf.summary.create_file_writer(str(run_dir / "tensorboard")))
        state.best_weights = model.get_weights()
        state.columns = cols
        state.compile(state.stages[0])
        heads.append(state)
    train_reader = FeatureReader(fs, kind, rows["train"], cfg.cache)
    val_reader = FeatureReader(fs, kind, rows["val"], cfg.cache)
    n_train, n_val, n_views = len(rows["train"]), len(rows["val"]), train_reader.n_views
    val_views = fixed_views(n_val, n_views, cfg.seed)
    val_ds = make_dataset(val_reader, np.arange(n_val), val_views, targets["val"], cfg.batch_size,
                          cfg.parallel_reads)
    log(f"training {', '.join(h.spec.name for h in heads)} on {kind} {shape}: {n_train} train / {n_val} val "
        f"images x {n_views} views, reader {train_reader.mode}, batch {cfg.batch_size}, "
        + "; ".join(f"{h.spec.name} {h.model.count_params():,} parameters, lr {h.stages}" for h in heads))
    epoch, step, t_start = 0, None, time.perf_counter()
    while any(h.active for h in heads):
        active = [h for h in heads if h.active]
        order, views = train_plan(n_train, n_views, cfg.seed, epoch)
        if step is None:  # first epoch, or a head finished or began a new stage (a new optimiser)
            step = _joint_train_step(active, shape, targets["train"].shape[1])
        for h in active:
            h.model.reset_metrics()  # the loss tracker then holds this epoch's sample-weighted mean
        t0 = time.perf_counter()
        for x, y in make_dataset(train_reader, order, views, targets["train"][order], cfg.batch_size,
                                 cfg.parallel_reads):
            step(x, y)
        dt = time.perf_counter() - t0
        sums = np.array([float(h.model.get_metrics_result()["loss"]) * n_train for h in active])
        val_sums = np.zeros(len(active))
        for x, y in val_ds:
            for j, h in enumerate(active):
                val_sums[j] += float(_batch_loss(h.spec, y.numpy()[:, h.columns],
                                                 h.model.predict_on_batch(x)).sum())
        epoch += 1
        notes = []
        for j, h in enumerate(active):
            loss, val_loss, lr = sums[j] / n_train, val_sums[j] / n_val, h.stages[h.stage]
            for key, value in zip(HISTORY_KEYS, (epoch, h.stage + 1, lr, loss, val_loss, dt, n_train / dt)):
                h.history[key].append(value)
            with h.writer.as_default(step=epoch):
                tf.summary.scalar("loss", loss)
                tf.summary.scalar("val_loss", val_loss)
                tf.summary.scalar("learning_rate", lr)
            improved = val_loss < h.best_loss
            if improved:
                h.best_loss, h.best_weights, h.since_best = val_loss, h.model.get_weights(), 0
            else:
                h.since_best += 1
            h.epochs_in_stage += 1
            notes.append(f"{h.spec.name} s{h.stage + 1} lr {lr:g} loss {loss:.4f} val {val_loss:.4f}"
                         f"{' *' if improved else ''}")
            if h.since_best >= cfg.patience or h.epochs_in_stage >= cfg.max_epochs:
                h.stage += 1
                step = None
                h.model.set_weights(h.best_weights)  # every stage starts from the best weights
                if h.stage == len(h.stages):
                    h.active = False
                else:
                    h.compile(h.stages[h.stage])
                    h.epochs_in_stage = h.since_best = 0
        left = max([cfg.max_epochs * (len(h.stages) - h.stage) - h.epochs_in_stage for h in heads if h.active],
                   default=0)
        log(f"  epoch {epoch}: " + " | ".join(notes) + f"  ({n_train / dt:,.0f} samples/s, {dt:.1f} s; "
            f"at most {left * dt:.0f} s left)")
    seconds = time.perf_counter() - t_start
    models = [h.model for h in heads]
    val_pred = predict_views(models, val_reader, cfg.batch_size, cfg.parallel_reads)
    test_pred = [None] * len(models)
    if len(rows["test"]):
        test_reader = FeatureReader(fs, kind, rows["test"], cfg.cache)
        test_pred = predict_views(models, test_reader, cfg.batch_size, cfg.parallel_reads)
    results = []
    for j, (h, run_dir) in enumerate(zip(heads, run_dirs)):
        h.model.save(run_dir / "model.keras")
        h.writer.close()
        results.append({"history": h.history, "val_views": val_pred[j], "test_views": test_pred[j],
                        "params": int(h.model.count_params()), "reader_mode": train_reader.mode,
                        "score_scale": _score_scale(h.model),
                        "best_val_loss": float(h.best_loss), "seconds": seconds,
                        "trained_with": [x.spec.name for x in heads]})
    return results


def fit_sklearn_head(cfg: TrainConfig, spec, fs, kind: str, rows: dict, targets: dict, run_dir: Path,
                     log) -> dict:
    import joblib

    reader = FeatureReader(fs, kind, rows["train"], cfg.cache)
    n, n_views = len(rows["train"]), reader.n_views
    if n * n_views <= cfg.max_train_rows:
        pos, views = np.repeat(np.arange(n), n_views), np.tile(np.arange(n_views), n)
    elif n <= cfg.max_train_rows or spec.name in ("svm_linear", "rf"):
        pos, views = np.arange(n), np.random.default_rng(cfg.seed).integers(0, n_views, size=n)
    else:
        raise TrainError(
            f"{n:,} training images are too many for an RBF SVM (it would run for hours beyond about "
            f"{cfg.max_train_rows:,}); use --head svm_linear (linear SVR) or rf instead.")
    x = reader.read(pos, views).astype(np.float32).reshape(len(pos), -1)
    log(f"training {spec.name} on {kind}: {len(pos):,} rows x {x.shape[1]:,} features")
    model = spec.build(cfg.seed)
    t0 = time.perf_counter()
    model.fit(x, targets["train"][pos])
    seconds = time.perf_counter() - t0
    log(f"  fitted in {seconds:.1f} s")
    path = run_dir / "model.joblib"
    joblib.dump(model, path)

    def views_of(split):
        if not len(rows[split]):
            return None
        r = FeatureReader(fs, kind, rows[split], cfg.cache)
        m = len(rows[split])
        return np.stack([model.predict(r.read(np.arange(m), np.full(m, v)).astype(np.float32).reshape(m, -1))
                         for v in range(n_views)], axis=1)[..., None]

    return {"history": {}, "val_views": views_of("val"), "test_views": views_of("test"), "params": None,
            "reader_mode": reader.mode, "seconds": seconds, "trained_with": [spec.name],
            "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


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


def write_predictions(path: Path, fs, rows: np.ndarray, views: np.ndarray, target: str,
                      per_view_path: Optional[Path] = None) -> None:
    """Mean-over-views predictions (with the distribution and the true one for distribution heads),
    and optionally every view's prediction."""
    ids, paths, truth = fs.ids[rows], fs.paths[rows], fs.mos[rows]
    k = views.shape[-1]
    dist = target == "dist"
    mean = views.mean(axis=1)
    mos = mos_from_distribution(mean) if dist else mean[:, 0]
    true_hist = fs.hist[rows] if dist else None
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "true", "pred"] + ([f"p{i + 1}" for i in range(k)] + [f"t{i + 1}" for i in range(k)]
                                                     if dist else []))
        for i in range(len(rows)):
            extra = []
            if dist:
                d = np.clip(mean[i], 0, None)
                extra = [f"{x:.6g}" for x in d / max(d.sum(), 1e-12)]
                extra += [f"{x:.6g}" for x in true_hist[i] / max(true_hist[i].sum(), 1e-12)]
            w.writerow([ids[i], paths[i], f"{truth[i]:.6g}", f"{mos[i]:.6g}"] + extra)
    if per_view_path is not None:
        with open(per_view_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "view"] + ([f"p{i + 1}" for i in range(k)] if dist else ["pred"]))
            for i in range(len(rows)):
                for v in range(views.shape[1]):
                    w.writerow([ids[i], v] + [f"{x:.6g}" for x in views[i, v]])


def _config(cfg: TrainConfig, spec, fs, kind: str, rows: dict, threshold: float, scale) -> dict:
    return {"train": {**asdict(cfg), "head": spec.name},
            "head": {"name": spec.name, "family": spec.family, "target": spec.target, "loss": spec.loss,
                     "description": spec.description, "reference": spec.reference},
            "kind": kind, "lr_stages": list(cfg.lr_stages or spec.lr_stages) if spec.family == "keras" else None,
            "store": {"path": str(Path(cfg.store).resolve()), "backbone": fs.attrs.get("backbone"),
                      "weights": fs.attrs.get("weights"), "settings": fs.attrs.get("settings"),
                      "view_set": fs.attrs.get("view_set")},
            "splits": {s: int(len(r)) for s, r in rows.items()}, "threshold": threshold, "scale": list(scale)}


def default_run_dir(store: str, head: str, seed: int) -> Path:
    return Path("runs") / f"{Path(store).stem}_{head}_seed{seed}"


def run_heads(cfg: TrainConfig, heads: Sequence[str], run_dirs: Optional[Sequence[str | Path]] = None,
              log: Callable[[str], None] = print, joint: bool = True) -> List[TrainResult]:
    """Trains several heads on one store (with `joint`, Keras heads sharing a feature kind in one
    pass over the data), then writes and evaluates each run directory."""
    from evaluation.report import evaluate_run

    specs = [get_head(h) for h in heads]
    run_dirs = [Path(d) for d in run_dirs] if run_dirs else [default_run_dir(cfg.store, s.name, cfg.seed)
                                                             for s in specs]
    fs = st.FeatureStore(cfg.store)
    try:
        try:
            kinds = [s.check_store(fs.kinds, fs.hist is not None, cfg.kind) for s in specs]
        except HeadMismatchError as exc:
            raise TrainError(f"store {cfg.store}: {exc}") from None
        scale = tuple(fs.attrs.get("dataset", {}).get("scale", (1.0, 10.0)))
        threshold = threshold_for_scale(scale)
        groups: Dict[tuple, List[int]] = {}
        for i, (spec, kind) in enumerate(zip(specs, kinds)):
            key = (kind, spec.family, -1 if spec.family == "keras" and joint else i)
            groups.setdefault(key, []).append(i)
        results: List[Optional[TrainResult]] = [None] * len(specs)
        for (kind, family, _), members in groups.items():
            kinds_of_target = sorted({specs[i].target for i in members})
            rows = _split_rows(fs, set(kinds_of_target))
            # one target matrix per group: [MOS | distribution], each head learns its columns
            blocks, columns, width = [], {}, 0
            for target in kinds_of_target:
                block = {s: _target_block(fs, r, target, threshold) for s, r in rows.items()}
                columns[target] = slice(width, width + block["train"].shape[1])
                width += block["train"].shape[1]
                blocks.append(block)
            targets = {s: np.concatenate([b[s] for b in blocks], axis=1) for s in rows}
            for i in members:
                run_dirs[i].mkdir(parents=True, exist_ok=True)
                config = _config(cfg, specs[i], fs, kind, rows, threshold, scale)
                (run_dirs[i] / "config.json").write_text(json.dumps(config, indent=2, default=str))
            if family == "keras":
                outs = fit_keras_heads(cfg, [specs[i] for i in members], fs, kind, rows, targets,
                                       [run_dirs[i] for i in members], log,
                                       [columns[specs[i].target] for i in members])
            else:
                i = members[0]
                flat = {s: t[:, 0] for s, t in targets.items()}
                outs = [fit_sklearn_head(cfg, specs[i], fs, kind, rows, flat, run_dirs[i], log)]
            for i, out in zip(members, outs):
                run_dir = run_dirs[i]
                config = json.loads((run_dir / "config.json").read_text())
                config.update({"params": out["params"], "reader_mode": out["reader_mode"],
                               "train_seconds": out["seconds"], "trained_with": out["trained_with"]})
                if out.get("score_scale"):
                    config["score_scale"] = out["score_scale"]
                if "model_sha256" in out:
                    config["model_sha256"] = out["model_sha256"]
                (run_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))
                history = out["history"]
                if history.get("epoch"):
                    with open(run_dir / "history.csv", "w", newline="") as f:
                        w = csv.writer(f)
                        w.writerow(list(history))
                        w.writerows(zip(*history.values()))
                target = specs[i].target
                write_predictions(run_dir / "predictions_val.csv", fs, rows["val"], out["val_views"], target)
                if out["test_views"] is not None:
                    write_predictions(run_dir / "predictions.csv", fs, rows["test"], out["test_views"], target,
                                      run_dir / "predictions_per_view.csv")
                metrics = evaluate_run(run_dir, log)
                results[i] = TrainResult(str(run_dir), metrics, out["seconds"], history)
        return results
    finally:
        fs.close()


def run_train(cfg: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    run_dir = cfg.run_dir or default_run_dir(cfg.store, cfg.head, cfg.seed)
    return run_heads(cfg, [cfg.head], [run_dir], log)[0]
