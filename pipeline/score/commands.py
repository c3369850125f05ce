"""The `iaa` subcommands that use a trained run on new photos (registered by `pipeline.cli`)."""
from __future__ import annotations

EXIT_OK, EXIT_SOME_FAILED = 0, 1


def add_parsers(sub, positive_int) -> None:
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
    sc.add_argument("--sheet-size", type=positive_int, default=200,
                    help="most photos on the contact sheet: the best and worst halves beyond it (default 200)")


def _fmt_row(row: dict) -> str:
    return f"{row['score']:.3f}  {row['path']}"


def cmd_score(args) -> int:
    from pathlib import Path

    from pipeline.score.score import SCORES_CSV, SCORES_HTML, run_score

    out = args.out or f"scores_{Path(args.run_dir).resolve().name}"
    result = run_score(args.run_dir, args.paths, out, weights=args.weights, store=args.store, chunk=args.chunk,
                       memory_gb=args.memory_gb,
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


COMMANDS = {"score": cmd_score}
