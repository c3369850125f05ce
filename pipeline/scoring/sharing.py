"""The `iaa` subcommands that make a trained run safe to share (listed by `pipeline.cli`):

    iaa pack RUN_DIR --out NAME.iaa     one file: model, extraction record, config, metrics, card, checksums
    iaa convert RUN_DIR --trust         rewrite a run saved as a pickle (model.joblib) in the safe format, once
    iaa describe-run RUN_DIR|NAME.iaa   the model card (and a pack's checksums, verified)
"""
from __future__ import annotations

from pathlib import Path

from features.core.errors import EXIT_OK, UsageError


def add_parsers(sub) -> None:
    """Adds `iaa pack`, `iaa convert` and `iaa describe-run` to the `iaa` parser."""
    pk = sub.add_parser("pack", help="one model file to share: a zip of the run, its card and checksums, "
                                     "loaded without running code")
    pk.add_argument("run_dir", help="a run directory (or an ablation directory: its best run)")
    pk.add_argument("--out", required=True, help="the pack file to write (NAME.iaa)")
    cv = sub.add_parser("convert", help="rewrite runs whose scikit-learn head is a pickle (model.joblib) in the "
                                        "safe format (model.skops)")
    cv.add_argument("run_dir", help="a run directory, or a folder of them (ablations: every run inside)")
    cv.add_argument("--trust", action="store_true",
                    help="required: loading the pickle once can run any code it holds; say you trust its origin")
    ds = sub.add_parser("describe-run", help="a run's or pack's model card: what it predicts, data, metrics, limits")
    ds.add_argument("run_dir", help="a run directory or a pack (NAME.iaa)")


def cmd_pack(args) -> int:
    """`iaa pack RUN_DIR --out NAME.iaa`."""
    from pipeline.scoring.pack import write_pack
    from pipeline.scoring.score import resolve_run_dir

    run_dir, note = resolve_run_dir(args.run_dir)
    if note:
        print(note)
    manifest = write_pack(run_dir, args.out)
    size = Path(args.out).stat().st_size
    print(f"{args.out}: {len(manifest['files'])} files of run {manifest['run']}, {size / 1e6:.1f} MB, model sha256 "
          f"{manifest['model_sha256'][:16]}…; `iaa score {args.out} PHOTOS` (or serve, best-shot, video, explain, "
          f"export, evaluate-on) reads it")
    return EXIT_OK


def cmd_convert(args) -> int:
    """`iaa convert RUN_DIR --trust`: model.joblib → model.skops in every run under RUN_DIR."""
    from evaluation import sklearn_files
    from evaluation.rundir import RunDir
    from pipeline.training.fit_sklearn import saved_types

    root = Path(args.run_dir)
    runs = sorted({p.parent for p in root.rglob(sklearn_files.LEGACY_FILE)} if root.is_dir() else set())
    if not runs:
        raise UsageError(f"{root} holds no run with a pickled model ({sklearn_files.LEGACY_FILE}): nothing to convert")
    if not args.trust:
        raise UsageError(f"{len(runs)} run(s) under {root} hold a pickle; loading it once can run any code it "
                         f"holds: if you trust where it came from, rerun with --trust")
    for path in runs:
        run = RunDir.open(path)
        digest = sklearn_files.convert_legacy(run.path, run.config.get("model_sha256") or "", saved_types())
        run.update_config(model_sha256=digest)
        print(f"{run.path}: {sklearn_files.LEGACY_FILE} → {sklearn_files.MODEL_FILE} (sha256 {digest[:16]}…)")
    return EXIT_OK


def cmd_describe_run(args) -> int:
    """`iaa describe-run RUN_DIR|NAME.iaa`: the model card."""
    from evaluation.model_card import read_model_card
    from pipeline.scoring.pack import is_pack
    from pipeline.training.linked import model_checksum
    from evaluation.rundir import RunDir
    from pipeline.scoring.score import resolve_run_dir

    run_dir, note = resolve_run_dir(args.run_dir)
    if note:
        print(note)
    run = RunDir.open(run_dir)
    print(read_model_card(run))
    origin = "pack, every member's sha256 checked" if is_pack(args.run_dir) else "run directory"
    print(f"model sha256 {model_checksum(run)} (its model files and linked runs; {origin})")
    return EXIT_OK


COMMANDS = {"pack": cmd_pack, "convert": cmd_convert, "describe-run": cmd_describe_run}
USES_TENSORFLOW = ()
