"""Personal taste by simulation (`make bench-personal`): how fast answers teach `heads.personal` a taste.

The protocol (issue 28), fixed:
- features: the default backbone's (EfficientNet-Lite0) `mlsp_narrow` of biq2021-dev (2,000 photos, one
  view, full resolution; the store is extracted once under stores/ and reused);
- the general score: out-of-fold ridge predictions (5 folds: the general model never saw the photo it
  scores);
- a user's taste = cos t · MOS + sin t · (features projected on a direction drawn from N(0, I) in their
  top 64 principal components), each standardised; answers compare two photos' tastes plus N(0, 0.1²);
- per user: 400 held-out photos and 3,000 held-out pairs of them (the truth: the noise-free taste), a
  library of the other 1,600 whose pairs are asked; the same users, held-out pairs and first random
  answers for every method (paired);
- pairwise accuracy on the held-out pairs after 10, 20, 50, 100, 200 answers: the general model, the
  personal model with random pairs, and with actively chosen pairs (`pipeline.training.active`).

Writes docs/personal_curves.png, logs/bench_personal.json and prints the table with 95 % intervals
(bootstrap over users) and the issue's must-holds; then times a refit after one answer on a 2,000-photo
library.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIQ = ROOT.parent / "shared" / "data" / "biq2021-dev"
COUNTS = (10, 20, 50, 100, 200)
NOISE = 0.1


def load_features(backbone: str):
    """(features (n, d) float64, MOS (n,)) of biq2021-dev, extracting the store first if needed."""
    from bench_quality import _store
    from features.store import DONE, FeatureStore

    if not BIQ.is_dir():
        sys.exit(f"{BIQ} is not here: the simulation needs biq2021-dev")
    with FeatureStore(_store(backbone, "none", None, "mlsp_narrow")) as fs:
        ok = np.flatnonzero(fs.status == DONE)
        feats = np.asarray(fs.features("mlsp_narrow")[ok], np.float64)[:, 0]
        mos = np.asarray(fs.mos[ok], np.float64)
    return np.sign(feats) * np.log1p(np.abs(feats)), mos


def out_of_fold_general(x: np.ndarray, mos: np.ndarray, seed: int = 0) -> np.ndarray:
    """Ridge (penalty chosen on a validation tenth of each training part) predictions, 5-fold out of fold."""
    from heads.validated_estimators import ValidatedRidge

    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(len(mos)), 5)
    pred = np.zeros(len(mos))
    for held in folds:
        rest = rng.permutation(np.setdiff1d(np.arange(len(mos)), held))
        val, train = rest[: len(rest) // 10], rest[len(rest) // 10:]
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
        model = ValidatedRidge().fit((x[train] - mu) / sd, mos[train], (x[val] - mu) / sd, mos[val])
        pred[held] = model.predict((x[held] - mu) / sd)
    return pred


def standardise(v):
    return (v - v.mean()) / (v.std() or 1.0)


def pair_accuracy(score: np.ndarray, pairs: np.ndarray, truth: np.ndarray) -> float:
    diff = score[pairs[:, 0]] - score[pairs[:, 1]]
    return float(np.mean(np.where(diff == 0, 0.5, (diff > 0) == truth)))


class User:
    """One simulated person: taste, held-out photos and pairs, a library, and a noisy oracle."""

    def __init__(self, t: float, seed: int, pcs: np.ndarray, mos: np.ndarray, n_held: int = 400, n_pairs: int = 3000):
        rng = np.random.default_rng(seed)
        direction = rng.normal(size=pcs.shape[1])
        self.taste = standardise(np.cos(t) * standardise(mos) + np.sin(t) * standardise(pcs @ direction))
        order = rng.permutation(len(mos))
        self.held, self.library = order[:n_held], order[n_held:]
        self.pairs = rng.integers(0, n_held, size=(n_pairs, 2))
        self.pairs = self.pairs[self.pairs[:, 0] != self.pairs[:, 1]]
        h = self.taste[self.held]
        self.truth = h[self.pairs[:, 0]] > h[self.pairs[:, 1]]
        self.rng = np.random.default_rng(seed + 10_000)

    def answer(self, a: int, b: int):
        """(better, worse) library indices, as the person answers with noise."""
        lib = self.taste[self.library]
        return (a, b) if lib[a] - lib[b] + NOISE * self.rng.normal() > 0 else (b, a)


def simulate(user: User, X: np.ndarray, active: bool, seed: int) -> dict:
    """Held-out accuracy after each count of answers, choosing pairs randomly or actively."""
    from heads.personal import PersonalHead
    from pipeline.training.active import next_pair, unbiased_mask

    lib_x, held_x = X[user.library], X[user.held]
    model, codes, answers, asked, out = None, None, [], set(), {}
    base = PersonalHead(seed=seed).fit_library(lib_x)
    codes = base.encode(lib_x)
    pick_rng = np.random.default_rng(seed + 20_000)  # the same first random pairs for both methods
    for k in range(1, max(COUNTS) + 1):
        a, b = next_pair(model if active else None, codes, len(lib_x), asked, len(answers), pick_rng)
        asked.add((a, b))
        answers.append(user.answer(a, b))
        if k in COUNTS or (active and (k <= 20 or k % 5 == 0)):
            model = PersonalHead(seed=seed)
            model.__dict__.update({key: v for key, v in base.__dict__.items() if key.endswith("_")})
            model.fit(lib_x, answers, library_fitted=True, unbiased=unbiased_mask(len(answers)) if active else None)
        if k in COUNTS:
            out[k] = pair_accuracy(model.utility(held_x), user.pairs, user.truth)
    return out


def interval(values: np.ndarray, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(2000, len(values)))].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def taste_components(x: np.ndarray, k: int = 64) -> np.ndarray:
    """The photos' scores on the top-k principal components of their standardised features."""
    from sklearn.utils.extmath import randomized_svd

    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    u, s, _ = randomized_svd(z, k, random_state=0)
    return u * s


def refit_seconds(X: np.ndarray, seed: int = 0) -> dict:
    """Time of a refit after one more answer (200 answers, the library's projection kept) on all photos."""
    from heads.personal import PersonalHead

    rng = np.random.default_rng(seed)
    pairs = [tuple(rng.choice(len(X), 2, replace=False)) for _ in range(200)]
    t0 = time.perf_counter()
    base = PersonalHead(seed=seed).fit_library(X)
    library = time.perf_counter() - t0
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        base.fit(X, pairs, library_fitted=True)
        times.append(time.perf_counter() - t0)
    return {"library_photos": len(X), "answers": 200, "library_projection_s": round(library, 3),
            "refit_s_median": round(float(np.median(times)), 3), "refit_s_max": round(max(times), 3)}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4), squeeze=False)
    for ax, (t, rows) in zip(axes[0], results.items()):
        for key, label, colour in (("general", "general model", "grey"), ("random", "personal, random pairs", "C0"),
                                   ("active", "personal, chosen pairs", "C3")):
            mean = [rows[str(k)][key][0] for k in COUNTS]
            ax.plot(COUNTS, mean, "o-", color=colour, label=label)
            ax.fill_between(COUNTS, [rows[str(k)][key][1] for k in COUNTS], [rows[str(k)][key][2] for k in COUNTS],
                            color=colour, alpha=0.15)
        ax.set_xscale("log")
        ax.set_xticks(COUNTS, [str(k) for k in COUNTS])
        ax.set_xlabel("answers (pairs compared)")
        ax.set_ylabel("accuracy on held-out pairs")
        ax.set_title(f"t = {t}: taste = {np.cos(float(t)):.2f}·MOS + {np.sin(float(t)):.2f}·direction")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--users", type=int, default=30, help="simulated users per t (default 30)")
    ap.add_argument("--ts", default="0,1", help="taste angles t, comma-separated (default 0,1)")
    ap.add_argument("--json", default="logs/bench_personal.json")
    ap.add_argument("--plot", default="docs/personal_curves.png")
    args = ap.parse_args()
    x, mos = load_features(args.backbone)
    general = out_of_fold_general(x, mos)
    pcs = taste_components(x)
    X = np.column_stack([general, x])
    results, t0 = {}, time.perf_counter()
    for ti, t in enumerate(float(v) for v in args.ts.split(",")):
        acc = {key: {k: [] for k in COUNTS} for key in ("general", "random", "active")}
        for i in range(args.users):
            user = User(t, 1000 * ti + i, pcs, mos)
            g = pair_accuracy(general[user.held], user.pairs, user.truth)
            for key, active in (("random", False), ("active", True)):
                for k, v in simulate(user, X, active, seed=i).items():
                    acc[key][k].append(v)
            for k in COUNTS:
                acc["general"][k].append(g)
            print(f"t={t:g} user {i + 1}/{args.users}: general {g:.3f}, random {acc['random'][50][-1]:.3f}, "
                  f"active {acc['active'][50][-1]:.3f} at 50 ({time.perf_counter() - t0:.0f} s)", flush=True)
        rows = {}
        for k in COUNTS:
            a = {key: np.array(acc[key][k]) for key in acc}
            rows[str(k)] = {key: interval(v) for key, v in a.items()}
            rows[str(k)]["random_minus_general"] = interval(a["random"] - a["general"])
            rows[str(k)]["active_minus_general"] = interval(a["active"] - a["general"])
            rows[str(k)]["active_minus_random"] = interval(a["active"] - a["random"])
        results[f"{t:g}"] = rows
    timing = refit_seconds(X)
    checks = must_holds(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"users": args.users, "results": results, "refit": timing,
                                           "must_hold": checks}, indent=1))
    plot(results, Path(args.plot))
    print(table(results))
    print(json.dumps(timing))
    for line, ok in checks.items():
        print(f"{'holds' if ok else 'FAILS'}: {line}")


def must_holds(results: dict) -> dict:
    out = {}
    if "1" in results:
        d = results["1"]["50"]["active_minus_general"][0]
        out[f"t=1: 50 answers lift accuracy >= 0.05 above the general model's (active {d:+.3f}, random "
            f"{results['1']['50']['random_minus_general'][0]:+.3f})"] = d >= 0.05
    if "0" in results:
        worst = min(min(results["0"][str(k)][f"{m}_minus_general"][0] for m in ("random", "active")) for k in COUNTS)
        out[f"t=0: never worse than the general model by more than 0.005 (worst {worst:+.4f})"] = worst >= -0.005
    for t, rows in results.items():
        gains = [rows[str(k)]["active_minus_random"][0] for k in COUNTS]
        at = {k: rows[str(k)]["active_minus_random"][0] for k in (50, 100)}
        if t == "1":
            out[f"t=1: active >= random + 0.01 at 50 and 100 ({at[50]:+.3f}, {at[100]:+.3f})"] = min(at.values()) >= 0.01
        out[f"t={t}: active never below random by more than 0.01 (worst {min(gains):+.3f})"] = min(gains) >= -0.01
    return out


def table(results: dict) -> str:
    fmt = lambda v: f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"  # noqa: E731
    lines = ["| t | answers | general | personal, random pairs | personal, chosen pairs | chosen − random |",
             "|---|---|---|---|---|---|"]
    for t, rows in results.items():
        for k in COUNTS:
            r = rows[str(k)]
            lines.append(f"| {t} | {k} | {r['general'][0]:.3f} | {fmt(r['random'])} | {fmt(r['active'])} | "
                         f"{r['active_minus_random'][0]:+.3f} [{r['active_minus_random'][1]:+.3f}, "
                         f"{r['active_minus_random'][2]:+.3f}] |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
