"""`iaa personalize GENERAL_RUN FOLDER --answers answers.csv --out RUN`: a personal run from a person's answers.

The photos of FOLDER are scored once by the general run (their features kept in a feature cache, so the
next teaching session or a larger answers file skips the backbone); the personal head (`heads.personal`)
learns the answers on those features in well under a second; the run directory (`pipeline.training.personal`)
scores like any other and carries its general run.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from evaluation.rundir import RunDir
from features.core.errors import EXIT_OK
from pipeline.training.personal import ANSWERS, GENERAL, Library, answers_to_pairs, pooled, read_answers


def load_library(predictor, folder: str | Path, chunk: int = 16, log: Callable[[str], None] = print) -> Library:
    """The folder's photos (recursive) scored by the general run, with their pooled features; photos that
    cannot be scored are left out (said in one line each)."""
    from pipeline.scoring.score import collect_photos, progress_bar

    folder = Path(folder)
    photos, _ = collect_photos([str(folder)])
    names, paths, general, feats = [], [], [], []
    bar = progress_bar(len(photos), desc="library")
    try:
        for part in predictor.iter_scores(photos, chunk, on_done=bar.update):
            for i, path in enumerate(part.paths):
                if not part.ok[i]:
                    log(f"  left out {path}: {part.reasons[i]}")
                    continue
                names.append(Path(path).relative_to(folder).as_posix())
                paths.append(path)
                general.append(float(part.score[i]))
                feats.append(pooled(part.features[predictor.kind][i:i + 1])[0])
    finally:
        bar.close()
    if len(names) < 3:
        from features.core.errors import UsageError

        raise UsageError(f"{folder} holds {len(names)} photos that could be scored: a personal model needs at least 3")
    return Library(names, paths, np.array(general), np.array(feats))


def fit_personal(library: Library, pairs: Sequence[Tuple[int, int]], seed: int = 0, base=None):
    """The fitted `PersonalHead` (reusing `base`'s library projection when given)."""
    from heads.personal import PersonalHead

    model = PersonalHead(seed=seed)
    if base is not None:
        model.__dict__.update({k: v for k, v in base.__dict__.items() if k.endswith("_")})
    return model.fit(library.X, list(pairs), library_fitted=base is not None)


def write_personal_run(out: str | Path, general: RunDir, model, library: Library, answer_rows: List[Tuple[str, str]],
                       counts: Tuple[int, int], folder: str) -> RunDir:
    """Writes the personal run directory: config, model.skops, the general run under linked/, answers, card."""
    from evaluation.model_card import write_model_card
    from pipeline.scoring.pack import run_files
    from pipeline.training.linked import model_checksum
    from pipeline.training.fit_sklearn import saved_types

    out = Path(out)
    if (out / GENERAL).exists():
        shutil.rmtree(out / GENERAL)
    for name, data in run_files(general, GENERAL).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    cfg = general.config
    config = {key: cfg[key] for key in ("kind", "extraction", "store", "scale", "label", "threshold") if key in cfg}
    config["head"] = {"name": "personal", "trainer": "personal", "target": "mos", "classifier": False,
                      "scale_free": False, "description": "one person's taste on top of the general run",
                      "reference": "Bradley-Terry model of their answers, shrunk toward the general ranking"}
    config["train"] = {"seed": model.seed}
    config["personal"] = {
        "general": GENERAL, "general_run": general.path.name, "general_model_sha256": model_checksum(general),
        "library_photos": len(library.names), "folder": str(folder), "pair_answers": counts[0], "ratings": counts[1],
        "pairs_learnt": model.n_answers_, "choice": model.choice_, "penalty": model.penalty_,
        "agreement_held_back": _number(model.cv_accuracy_),
        "agreement_held_back_general": _number(model.cv_accuracy_general_)}
    run = RunDir.create(out, config)
    run.save_sklearn(model, saved_types())
    with open(out / ANSWERS, "w") as f:
        f.write("better,worse\n" + "".join(f"{a},{b}\n" for a, b in answer_rows))
    write_model_card(run)
    return run


def _number(value) -> Optional[float]:
    return None if value is None or not np.isfinite(value) else float(value)


def personalize(general_dir: str, folder: str, answers: str, out: str, cache: Optional[str] = None, seed: int = 0,
                log: Callable[[str], None] = print) -> RunDir:
    """Reads the answers, scores the library once, fits and writes the personal run."""
    from pipeline.scoring.predictor import Predictor
    from pipeline.scoring.score import resolve_run_dir

    rows = read_answers(answers)
    general_dir, note = resolve_run_dir(general_dir)
    if note:
        log(note)
    predictor = Predictor.from_run(general_dir, all_kinds=cache is not None)
    if cache:
        predictor.use_cache(cache)
    library = load_library(predictor, folder, log=log)
    pairs, n_pairs, n_ratings = answers_to_pairs(rows, library.index(), str(answers))
    if not pairs:
        from features.core.errors import UsageError

        raise UsageError(f"{answers}: no answer compares two photos (give pairs better,worse or two ratings that differ)")
    model = fit_personal(library, pairs, seed)
    names = library.names
    run = write_personal_run(out, predictor.run, model, library, [(names[a], names[b]) for a, b in pairs],
                             (n_pairs, n_ratings), folder)
    log(f"{out}: learnt {len(pairs)} pairs ({n_pairs} answered, the rest from {n_ratings} ratings) on "
        f"{len(names)} photos; {'personal' if model.choice_ == 'personal' else 'general ranking kept'}: agreement "
        f"with held-back answers {model.cv_accuracy_:.2f} (general run {model.cv_accuracy_general_:.2f}); "
        f"`iaa score {out} PHOTOS` ranks by it")
    return run


def add_parsers(sub) -> None:
    """Adds `iaa personalize` to the `iaa` parser."""
    pz = sub.add_parser("personalize", help="a personal run from a person's answers (pairs and/or ratings) on top "
                                            "of a general run")
    pz.add_argument("run_dir", help="the general run (a run directory, pack or ablation directory)")
    pz.add_argument("folder", help="the person's photos (searched recursively); answers name them relative to it")
    pz.add_argument("--answers", required=True, help="CSV rows `better,worse` (photo names) and/or `file,rating`")
    pz.add_argument("--out", required=True, help="the personal run directory to write")
    pz.add_argument("--store", help="feature cache directory: photos seen before skip the backbone")
    pz.add_argument("--seed", type=int, default=0)


def cmd_personalize(args) -> int:
    """`iaa personalize GENERAL_RUN FOLDER --answers CSV --out RUN`."""
    personalize(args.run_dir, args.folder, args.answers, args.out, cache=args.store, seed=args.seed,
                log=lambda m: print(m, flush=True))
    return EXIT_OK


COMMANDS = {"personalize": cmd_personalize}
USES_TENSORFLOW = tuple(COMMANDS)
