"""The `iaa` subcommands that use a trained run on new photos (listed by `pipeline.cli`)."""
from __future__ import annotations

from features.core.errors import EXIT_OK, EXIT_SOME_FAILED
from pipeline.arguments import positive_int


def add_parsers(sub) -> None:
    """Adds the scoring subcommands to the `iaa` parser."""
    sc = sub.add_parser("score", help="score photos (files and folders) with a trained run")
    sc.add_argument("run_dir", help="a run directory written by `iaa train` or `iaa ablate`")
    sc.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    sc.add_argument("--out", help="output directory for scores.csv and scores.html (default scores_<run>)")
    sc.add_argument("--store", help="feature cache directory: photos scored before (by any run of the same "
                                    "extraction) skip the backbone")
    sc.add_argument("--weights", help="the backbone weights file, if it moved since training (sha256 checked)")
    sc.add_argument("--memory-gb", type=float, help="memory budget of one forward pass (default 70%% of "
                                                     "available RAM; a photo that cannot fit is listed as failed)")
    sc.add_argument("--chunk", type=positive_int, default=16, help="photos per extraction batch (default 16)")
    sc.add_argument("--embeddings", action="store_true",
                    help="embedding heads (triplet): also write embeddings.npz (path, score, unit-norm embedding, "
                         "best first) for nearest-neighbour search")
    sc.add_argument("--sheet-size", type=positive_int, default=200,
                    help="most photos on the contact sheet: the best and worst halves beyond it (default 200)")


    _add_best_shot(sub)
    eo = sub.add_parser("evaluate-on", help="score another store's split with a trained run (cross-dataset)")
    eo.add_argument("run_dir", help="a run directory (or an ablation directory: its best run)")
    eo.add_argument("store", help="a feature store extracted like the run's (backbone, weights, blocks)")
    eo.add_argument("--split", default="test", help="test, val, train or all (default test)")
    eo.add_argument("--out", help="output directory (default <run_dir>/evaluate_on/<store>_<split>)")
    xp = sub.add_parser("export", help="one model from image pixels to score (SavedModel, ONNX or .keras), checked")
    xp.add_argument("run_dir", help="a run directory of a Keras head (or an ablation directory: its best run)")
    xp.add_argument("--format", choices=("saved_model", "onnx", "keras"), default="saved_model",
                    help="saved_model and onnx serve without this package; keras loads with it")
    xp.add_argument("--out", required=True, help="output directory (saved_model), .onnx or .keras file")
    xp.add_argument("--check-image", help="photo to check the exported model on (default: a fixed synthetic one)")
    ex = sub.add_parser("explain", help="heat maps of what raises and lowers photos' scores under a run")
    ex.add_argument("run_dir", help="a run directory (or an ablation directory: its best run)")
    ex.add_argument("images", nargs="+", help="image files")
    ex.add_argument("--method", choices=("auto", "gradient", "occlusion"), default="auto",
                    help="gradient x input through backbone, pooling and head (Keras heads), or occlusion of "
                         "a grid of cells (any head); auto: the gradient where it exists")
    ex.add_argument("--grid", type=positive_int, default=6, help="occlusion cells per side (default 6)")
    ex.add_argument("--out", help="output directory for the PNGs (default explain)")
    ex.add_argument("--memory-gb", type=float, help="memory budget of one forward pass")
    vi = sub.add_parser("video", help="score a video's frames with a trained run and pick key frames")
    vi.add_argument("run_dir", help="a run directory (or an ablation directory: its best run)")
    vi.add_argument("video", help="a video file OpenCV can decode (mp4, avi, mov, ...)")
    vi.add_argument("--out", help="output directory (default video_<file name>)")
    how = vi.add_mutually_exclusive_group()
    how.add_argument("--every", type=positive_int, help="score every N-th frame")
    how.add_argument("--per-second", type=float, help="score N frames per second of video (default 1)")
    vi.add_argument("--top", type=positive_int, default=5, help="key frames to pick (default 5)")
    vi.add_argument("--min-gap", type=float, default=2.0,
                    help="seconds between key frames, which also come from different shots (default 2)")
    vi.add_argument("--smooth", type=positive_int, default=5, help="moving-average window in samples (default 5)")
    vi.add_argument("--memory-gb", type=float, help="memory budget of one forward pass")


def _add_best_shot(sub) -> None:
    from pipeline.scoring.best_shot import MAX_DISTANCE, TIME_GAP

    bs = sub.add_parser("best-shot", help="group near-duplicate shots and pick the best of each with a run")
    bs.add_argument("run_dir", help="a run directory (or an ablation directory: its best run)")
    bs.add_argument("paths", nargs="+", help="folders and/or image files")
    bs.add_argument("--out", help="output directory for groups.csv and best_shot.html (default best_shot)")
    bs.add_argument("--max-distance", type=int, default=MAX_DISTANCE,
                    help=f"most differing bits of two shots' 64-bit perceptual hashes (default {MAX_DISTANCE})")
    bs.add_argument("--time-gap", type=float, default=TIME_GAP,
                    help=f"most seconds between two shots of a group, by EXIF capture time (default {TIME_GAP:g})")
    bs.add_argument("--max-groups", type=positive_int, default=100, help="groups shown on the page (default 100)")
    bs.add_argument("--memory-gb", type=float, help="memory budget of one forward pass")


def _predictor(args, **options):
    """The predictor of `args.run_dir` (an ablation directory: its best run, said on stdout)."""
    from pipeline.scoring.predictor import Predictor
    from pipeline.scoring.score import resolve_run_dir

    run_dir, note = resolve_run_dir(args.run_dir)
    if note:
        print(note)
    predictor = Predictor.from_run(run_dir, **options)
    for line in predictor.notes:
        print(f"note: {line}")
    return predictor


def _fmt_row(row: dict) -> str:
    return f"{row['score']:.3f}  {row['path']}"


def cmd_score(args) -> int:
    """`iaa score RUN_DIR PATH...`: scores.csv and a contact sheet; exit 1 when some photos failed."""
    from pathlib import Path

    from pipeline.scoring.score import SCORES_CSV, SCORES_HTML, run_score

    given = Path(args.run_dir).resolve()
    out = args.out or f"scores_{given.stem if given.is_file() else given.name}"  # a pack: without .iaa
    result = run_score(args.run_dir, args.paths, out, weights=args.weights, store=args.store, chunk=args.chunk,
                       memory_gb=args.memory_gb, embeddings=args.embeddings,
                       sheet_size=args.sheet_size, log=lambda m: print(m, flush=True))
    rows, failures = result.rows, result.failures
    print(f"\nscored {len(rows)} photos, {len(failures)} failed, in {result.seconds:.1f} s "
          f"({result.photos_per_second:.2f} photos/s)")
    if rows:
        print("best:  " + _fmt_row(rows[0]))
        print("worst: " + _fmt_row(rows[-1]))
    for f in failures[:20]:
        print(f"  failed {f['path']}: {f['reason']}")
    if len(failures) > 20:
        print(f"  ... and {len(failures) - 20} more (see {SCORES_CSV})")
    if result.skipped:
        print(f"skipped {len(result.skipped)} files that are not images by their suffix, e.g. {result.skipped[0]}")
    print(f"{Path(out, SCORES_CSV)} and {Path(out, SCORES_HTML)} (contact sheet)")
    return EXIT_SOME_FAILED if failures else EXIT_OK


def cmd_video(args) -> int:
    """`iaa video RUN_DIR FILE`: frame scores, a curve and key frames."""
    from pathlib import Path

    from pipeline.scoring.video import score_video, write_video_outputs

    predictor = _predictor(args, memory_gb=args.memory_gb)
    out = Path(args.out or f"video_{Path(args.video).stem}")
    result, picked = score_video(predictor, args.video, every=args.every, per_second=args.per_second,
                                 window=args.smooth, top=args.top, min_gap=args.min_gap)
    write_video_outputs(result, picked, out, f"{Path(args.video).name} scored by {predictor.run.path.name}")
    n = len(result.frames)
    print(f"\nscored {n} frames ({result.fps:.2f} fps video, {int(result.shots.max()) + 1} shots) in "
          f"{result.seconds:.1f} s ({n / max(result.seconds, 1e-9):.2f} frames/s); {result.failed} failed")
    for rank, i in enumerate(result.picks, 1):
        print(f"  key frame {rank}: t = {result.times[i]:.2f} s (frame {result.frames[i]}), smoothed score "
              f"{result.smoothed[i]:.3f}, shot {result.shots[i]}")
    print(f"{out}/frames.csv, {out}/curve.png and {len(picked)} JPEGs in {out}/keyframes/")
    return EXIT_OK


def cmd_best_shot(args) -> int:
    """`iaa best-shot RUN_DIR FOLDER...`: near-duplicate groups and the best photo of each."""
    import numpy as np

    from pipeline.scoring.best_shot import picks, run_best_shot

    out = args.out or "best_shot"
    shots, failures = run_best_shot(args.run_dir, args.paths, out, max_distance=args.max_distance,
                                    time_gap=args.time_gap, memory_gb=args.memory_gb, max_groups=args.max_groups,
                                    log=lambda m: print(m, flush=True))
    sizes = np.bincount([s.group for s in shots]) if shots else np.zeros(0, int)
    print(f"\n{len(shots)} photos scored, {len(failures)} failed; {len(sizes)} groups, "
          f"{int((sizes > 1).sum())} of two or more shots")
    for g, i in list(picks(shots).items())[:20]:
        if sizes[g] > 1:
            print(f"  group {g} ({sizes[g]} shots): best {shots[i].path} ({shots[i].score:.3f})")
    for f in failures[:20]:
        print(f"  failed {f['path']}: {f['reason']}")
    print(f"{out}/groups.csv and {out}/best_shot.html")
    return EXIT_SOME_FAILED if failures else EXIT_OK


def cmd_explain(args) -> int:
    """`iaa explain RUN_DIR IMAGE...`: heat maps of what raises and lowers each score."""
    from pathlib import Path

    from features.images import ImageError, decode_image
    from pipeline.scoring.explain import explain, save_overlay

    predictor = _predictor(args, memory_gb=args.memory_gb)
    out, failed = Path(args.out or "explain"), 0
    for i, path in enumerate(args.images):
        try:
            image = decode_image(path, predictor.job.max_side)
        except ImageError as exc:
            print(f"  failed {path}: {exc}")
            failed += 1
            continue
        exp = explain(predictor, path, args.method, args.grid)
        png = save_overlay(exp, image, out / f"{i:03d}_{Path(path).stem}_explain.png",
                           f"{Path(path).name} under {predictor.run.path.name}")
        print(f"{exp.score:.3f}  {path}  ({exp.method}) -> {png}")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def cmd_export(args) -> int:
    """`iaa export RUN_DIR --format F --out PATH`: one model from pixels to score, checked against `iaa score`."""
    from features.images import decode_image
    from pipeline.scoring.export import export_run

    predictor = _predictor(args)
    job = predictor.job
    image = decode_image(args.check_image, job.max_side) if args.check_image else None
    r = export_run(predictor, args.format, args.out, image)
    rescaled = (f", after --max-side {job.max_side}" if job.max_side else "") + (
        f", after --resize {job.resize}" if job.resize else "")
    print(f"{r['path']}: {args.format} model of {predictor.run.path.name} (input: one decoded RGB image, "
          f"uint8 HxWx3{rescaled})")
    print(f"check: exported {r['exported_score']:.6f} vs iaa score {r['score']:.6f}, difference "
          f"{r['difference']:.2g} (tolerance {r['tolerance']:.2g})")
    return EXIT_OK


def cmd_evaluate_on(args) -> int:
    """`iaa evaluate-on RUN_DIR STORE`: a run scored on another store's split (cross-dataset)."""
    from pathlib import Path

    from pipeline.scoring.evaluate_on import evaluate_on
    from pipeline.scoring.score import resolve_run_dir

    from pipeline.scoring.pack import is_pack

    run_dir, note = resolve_run_dir(args.run_dir)
    if note:
        print(note)
    out = args.out or (f"evaluate_on_{Path(args.run_dir).stem}/{Path(args.store).stem}_{args.split}"
                       if is_pack(args.run_dir) else None)  # not inside the pack's cache
    evaluate_on(run_dir, args.store, split=args.split, out=out, log=lambda m: print(m, flush=True))
    return EXIT_OK


COMMANDS = {"evaluate-on": cmd_evaluate_on, "export": cmd_export, "score": cmd_score,
            "video": cmd_video, "best-shot": cmd_best_shot, "explain": cmd_explain}
USES_TENSORFLOW = tuple(COMMANDS)
