"""The model card of a run: `MODEL_CARD.md`, written beside its report, packed with it, shown by
`iaa describe-run` and on the server's page.

What it predicts and on which scale, the training data and split, the test metrics with their 95 %
intervals, the backbone and its weights' identity, the views, the intended use and the known limits: what
someone receiving a model file needs before trusting its scores (after Mitchell et al., "Model Cards for
Model Reporting", FAT* 2019).
"""
from __future__ import annotations

from typing import Optional

from evaluation.rundir import RunDir

CARD_FILE = "MODEL_CARD.md"


def _interval(test: dict, key: str) -> str:
    value, ci = test.get(key), test.get(f"{key}_ci95")
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _predicts(config: dict) -> str:
    head, scale = config.get("head") or {}, config.get("scale") or [None, None]
    if head.get("classifier"):
        return (f"the confidence (0 to 1) that a photo is in the high class of its {config.get('label', 'mos')} "
                f"(at the cut {config.get('threshold')} on the dataset's {scale[0]}-{scale[1]} scale)")
    if head.get("scale_free"):
        return "a score whose order ranks photos (scale-free: only comparisons between photos are meaningful)"
    label = config.get("label", "mos")
    what = "mean opinion score (MOS)" if label == "mos" else f"{label} rating"
    what = f"a distribution of votes and its mean, the {what}," if head.get("target") == "dist" else f"the {what}"
    return f"{what} of a photo on the training dataset's scale {scale[0]} to {scale[1]}"


def _weights(config: dict) -> str:
    weights = (config.get("store") or {}).get("weights") or {}
    if not weights:
        return "not recorded"
    text = weights.get("spec") or weights.get("text") or "?"
    sha = weights.get("sha256")
    return f"{text}" + (f" (sha256 {sha[:16]}…)" if sha else "")


def _training(config: dict) -> list:
    store, splits, train = config.get("store") or {}, config.get("splits") or {}, config.get("train") or {}
    lines = [f"- Dataset: {store.get('dataset')}, {splits.get('train')} training / {splits.get('val')} validation "
             f"/ {splits.get('test')} test photos"]
    if train.get("folds"):
        lines.append(f"- Split: fold {train.get('fold')} of {train.get('folds')} (cross-validation)")
    members = (config.get("ensemble") or {}).get("seeds")
    lines.append(f"- Seeds: {', '.join(map(str, members))} (a seed ensemble: their mean)" if members
                 else f"- Seed: {train.get('seed')}")
    return lines


def _personal_card(config: dict, name: str) -> str:
    p = config["personal"]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    return "\n".join([
        f"# Model card: {name} (personal)", "",
        f"**Predicts** one person's preference among photos, on the general run's scale: the general run "
        f"`{p['general_run']}` (carried under `{p['general']}`, model sha256 {p['general_model_sha256'][:16]}…) "
        f"plus what this person's answers add.", "",
        "## Learnt from",
        f"- {p['pair_answers']} pair answers and {p['ratings']} ratings ({p['pairs_learnt']} pairs) on a library of "
        f"{p['library_photos']} photos ({p['folder']})",
        f"- Kept: the {'personal model (penalty ' + format(p['penalty'], 'g') + ')' if p['choice'] == 'personal' else 'general ranking (the answers did not beat it on held-back answers)'}",
        f"- Agreement with held-back answers (k-fold over the answers): {fmt(p['agreement_held_back'])} "
        f"(general run alone: {fmt(p['agreement_held_back_general'])})", "",
        "## Intended use",
        "Ranking this person's photos by their taste (`iaa score`, `best-shot`, `serve`). It is one person's: "
        "not a judgement for anyone else.", "",
        "## Known limits",
        "- A few dozen answers teach a few directions of taste; photos unlike the library are ranked mostly by "
        "the general run.",
        "- Its agreement figure comes from the answers themselves: noisy with few answers."]) + "\n"


def model_card_markdown(config: dict, metrics: Optional[dict], name: str) -> str:
    """The card's Markdown for a run's config and metrics."""
    if config.get("personal"):
        return _personal_card(config, name)
    store, head = config.get("store") or {}, config.get("head") or {}
    test = (metrics or {}).get("test") or {}
    extraction = config.get("extraction") or {}
    resize = (extraction.get("settings") or {}).get("resize")
    lines = [f"# Model card: {name}", "",
             f"**Predicts** {_predicts(config)}.", "",
             "## Model",
             f"- Head: `{head.get('name')}` — {head.get('description', '')}"
             + (f" (after {head['reference']})" if head.get("reference") else ""),
             f"- Features: `{config.get('kind')}` of backbone `{store.get('backbone')}`, weights {_weights(config)}",
             f"- Views averaged per photo: {store.get('view_set')}"
             + (f"; photos resized by `{resize}` first" if resize else "; photos at full resolution"),
             f"- Model file sha256: {config.get('model_sha256') or 'in model.keras (Keras safe mode)'}", "",
             "## Training data", *_training(config), "",
             f"## Test metrics ({test.get('n', 'n/a')} photos, 95 % bootstrap intervals)",
             f"- SRCC {_interval(test, 'srcc')}, PLCC {_interval(test, 'plcc')}"
             + (f", RMSE {test['rmse']:.3f}" if test.get("rmse") is not None else "")
             + (f", accuracy {test['accuracy']:.3f}" if test.get("accuracy") is not None else ""),
             "",
             "## Intended use",
             "Ranking photos of a collection by the predicted score, picking the best of near-duplicate shots, "
             "and comparing photos like those it was trained on. Scores order photos; their values are on the "
             "training dataset's scale, not an absolute judgement.", "",
             "## Known limits",
             f"- Learnt from {(config.get('splits') or {}).get('train')} photos of {store.get('dataset')}: photos "
             f"unlike them (other content, other kinds of rating) are scored less reliably; measure that with "
             f"`iaa evaluate-on` on a store of your own photos before relying on it.",
             "- One judgement for everybody: the raters' mean, not a person's taste.",
             "- Test figures come from one split of one dataset; their intervals show how far they can move."]
    if "random" in str((store.get("weights") or {}).get("spec", "")):
        lines.append("- The backbone has random weights: a test model, not for real use.")
    return "\n".join(lines) + "\n"


def write_model_card(run: RunDir) -> str:
    """Writes `MODEL_CARD.md` into the run directory from its config and metrics; returns the text."""
    text = model_card_markdown(run.config, run.read_metrics(), run.path.name)
    (run.path / CARD_FILE).write_text(text)
    return text


def read_model_card(run: RunDir) -> str:
    """The run's card: its `MODEL_CARD.md`, or one made now from its config and metrics (older runs)."""
    path = run.path / CARD_FILE
    return path.read_text() if path.is_file() else model_card_markdown(run.config, run.read_metrics(), run.path.name)
