"""The `iaa` commands of stage 2: `train`, `ablate`, `evaluate`, `describe-head` and `fuse`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from features.core.errors import EXIT_OK, UsageError
from pipeline.arguments import floats, positive_int


def add_parsers(sub) -> None:
    """Adds this stage's subcommands to the `iaa` parser."""
    _add_train_and_ablate(sub)
    _add_inspection(sub)


def _add_training_options(p) -> None:
    from heads.inputs import INPUT_NORMS
    from pipeline.training.fitting import EARLY_STOP, REFERENCE_RECIPE, TrainConfig
    from pipeline.training.optimizers import OPTIMIZERS

    p.add_argument("--batch-size", type=positive_int,
                   help=f"training batch (default: the head's recipe, else {REFERENCE_RECIPE.batch_size})")
    p.add_argument("--label", default=TrainConfig.label,
                   help="the score to learn: mos, or a stored attribute (`iaa store-info` lists them; a flickr "
                        "store has aesthetic_s and popularity)")
    p.add_argument("--lr-stages", help="comma-separated learning rates, one stage each "
                   "(default narrow 1e-3,1e-4,1e-5; wide 1e-4,1e-5,1e-6)")
    p.add_argument("--reference-protocol", action="store_true",
                   help="train by the MLSP paper's protocol (raw input, batch 128, stages of up to 20 epochs, patience "
                        "5 on the validation loss, no penalty) instead of each head's recipe; options given still apply")
    p.add_argument("--max-epochs", type=positive_int,
                   help=f"most epochs per stage (default: the head's recipe, else {REFERENCE_RECIPE.max_epochs})")
    p.add_argument("--patience", type=positive_int, help="epochs without improvement before a stage ends "
                   f"(default: the head's recipe, else {REFERENCE_RECIPE.patience})")
    p.add_argument("--early-stop", choices=EARLY_STOP,
                   help="what picks the best epoch: validation loss or validation SRCC (default: the head's "
                        f"recipe, else {REFERENCE_RECIPE.early_stop})")
    p.add_argument("--cache", choices=("auto", "ram", "none"), default="auto",
                   help="auto keeps the training split in RAM only when it fits with room to spare")
    p.add_argument("--parallel-reads", type=positive_int, default=4)
    p.add_argument("--input-norm",
                   help="heads' input: " + "; ".join(f"{n.name}: {n.description}" for n in INPUT_NORMS)
                   + f" (default: the head's recipe, else {REFERENCE_RECIPE.input_norm})")
    p.add_argument("--weight-decay", type=float, help="weight decay of Keras heads' optimizer (default: "
                   f"the head's recipe, else {REFERENCE_RECIPE.weight_decay:g})")
    p.add_argument("--blocks", metavar="last:N|first:N|NAME,...", help="train on these MLSP blocks of the kind "
                   "only (Hosu et al. 2019: Single-1FC (5) = last:5; figure 7 = last:1 ... last:11)")
    p.add_argument("--optimizer", help="Keras heads' optimizer: " + "; ".join(
        f"{o.name}: {o.description} ({o.reference})" for o in OPTIMIZERS) + " (default: the head's recipe, else "
        f"{REFERENCE_RECIPE.optimizer})")
    p.add_argument("--l2", type=float,
                   help="L2 penalty on Keras heads' kernels in standard units; for single1fc, ridge with "
                        f"alpha = l2 x training images (default: the head's recipe, else {REFERENCE_RECIPE.l2:g})")
    from heads import option_users
    from heads.options import add_option_flags

    add_option_flags(p, option_users())


def _add_train_and_ablate(sub) -> None:
    from heads import HEADS

    tr = sub.add_parser("train", help="stage 2: train a head on a store's features")
    tr.add_argument("--store", required=True)
    tr.add_argument("--head", required=True, help=HEADS.help())
    tr.add_argument("--run-dir", help="output directory (default runs/<store>_<head>_seed<N>)")
    tr.add_argument("--kind", help="feature kind to train on (default: the head's first kind in the store)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--seeds", type=positive_int, default=1, help="train seeds --seed .. --seed+N-1 and average "
                    "them into one run (a seed ensemble; members under <run-dir>/members/)")
    tr.add_argument("--folds", type=int, default=0, help="train on one fold of a K-fold cross-validation over "
                    "every photo instead of the store's split (K >= 2; with --fold)")
    tr.add_argument("--fold", type=int, default=0, help="which fold tests (0 .. K-1)")
    _add_training_options(tr)
    ab = sub.add_parser("ablate", help="train a grid of heads x seeds and write a leaderboard")
    ab.add_argument("--store", required=True)
    ab.add_argument("--heads", required=True, help="comma-separated: " + HEADS.help())
    ab.add_argument("--seeds", type=positive_int, default=1, help="number of seeds (0, 1, ...)")
    ab.add_argument("--out", help="output directory (default runs/ablate_<store>)")
    ab.add_argument("--sequential", action="store_true", help="train Keras heads one after another")
    ab.add_argument("--ensemble", action="store_true", help="also average each head's seeds into one run "
                    "(<head>[_fold<K>]_ensemble/, a leaderboard row of its own; needs --seeds 2 or more)")
    ab.add_argument("--folds", type=int, default=0, help="K-fold cross-validation over every photo (K >= 2): "
                    "rank on the pooled out-of-fold predictions instead of the store's test split")
    ab.add_argument("--kind", help="one feature kind for every head (e.g. a concatenation a+b; default: each "
                                   "head's first kind in the store)")
    _add_training_options(ab)


def _add_inspection(sub) -> None:
    from heads import HEADS

    ev = sub.add_parser("evaluate", help="metrics, report and figures of a run directory")
    ev.add_argument("run_dir")
    ev.add_argument("--failure-cases", type=positive_int, metavar="N", help="also draw failure_cases.png: among the "
                    "highest-rated test photos, the N lowest and N highest errors (Hosu et al. 2019, figures 8-9: 40)")
    ev.add_argument("--among-top", type=positive_int, metavar="M", default=0,
                    help="with --failure-cases: the M highest-rated test photos (default a quarter of the test split, "
                         "the paper's 5,000 of 20,000)")
    rb = sub.add_parser("resolution-baseline", help="how much the photos' width and height alone predict (Hosu et "
                        "al. 2019, section 4.3): SRCC(pixels, MOS) and a size-only classifier")
    rb.add_argument("--store", required=True)
    rb.add_argument("--out", help="output directory (default next to the store: resolution_<store>)")
    dh = sub.add_parser("describe-head", help="layers and parameter count of a head")
    dh.add_argument("head", help=HEADS.help())
    dh.add_argument("--input-shape", required=True, help="e.g. 16928 or 5,5,16928")
    dh.add_argument("--bins", type=positive_int, default=10, help="histogram bins (distribution heads)")
    dh.add_argument("--blocks", help="channels per block for multi3fc, e.g. 64,128,256,512,512")
    dh.add_argument("--attributes", type=positive_int, default=11,
                    help="attribute outputs of attribute heads (default 11, AADB's)")
    dh.add_argument("--json", action="store_true")
    fu = sub.add_parser("fuse", help="late fusion of two runs on the same split (APM's SPP + GMP branches)")
    fu.add_argument("run_a", help="a run directory")
    fu.add_argument("run_b", help="another run directory on the same dataset and split")
    fu.add_argument("--out", help="the fused run directory (default <parent of run_a>/fuse_<a>+<b>)")


def _train_config(args, **fields):
    """The `TrainConfig` of `iaa train` / `iaa ablate` from the shared training options."""
    from heads.options import given_options
    from pipeline.training.train import TrainConfig

    return TrainConfig(store=args.store, batch_size=args.batch_size, lr_stages=floats(args.lr_stages),
                       max_epochs=args.max_epochs, patience=args.patience, cache=args.cache,
                       parallel_reads=args.parallel_reads, input_norm=args.input_norm,
                       weight_decay=args.weight_decay, l2=args.l2, early_stop=args.early_stop,
                       optimizer=args.optimizer, blocks=args.blocks,
                       options=given_options(args), label=args.label, reference_protocol=args.reference_protocol,
                       **fields)


def cmd_train(args) -> int:
    """`iaa train`: one head (or a seed ensemble with `--seeds N`) into a run directory."""
    from pipeline.training.ensemble import train_seeds
    from pipeline.training.train import run_train

    cfg = _train_config(args, head=args.head, run_dir=args.run_dir, kind=args.kind, seed=args.seed,
                        folds=args.folds, fold=args.fold)
    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.seeds > 1:
        result = train_seeds(cfg, list(range(args.seed, args.seed + args.seeds)), log)
    else:
        result = run_train(cfg, log=log)
    test = result.metrics.get("test")
    print(f"\nrun directory: {result.run_dir} ({result.seconds:.1f} s of training; report.md and figures there)")
    if test:
        fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
        print(f"test ({test['n']} images, mean over views): SRCC {fmt(test.get('srcc'))}  "
              f"PLCC {fmt(test.get('plcc'))}  accuracy {fmt(test.get('accuracy'))} "
              f"(threshold {test['threshold']:g}, {test['high_fraction']:.1%} high)")
    else:
        print("no test images in the store: no test metrics")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    """`iaa evaluate RUN_DIR`: metrics, report and figures of a run."""
    from evaluation.report import evaluate_run

    m = evaluate_run(args.run_dir)
    test = m.get("test") or {}
    print(f"{args.run_dir}: report.md, metrics.json and figures written; test SRCC {test.get('srcc')}, "
          f"PLCC {test.get('plcc')}, accuracy {test.get('accuracy')}")
    if args.failure_cases:
        from evaluation.plots import failure_cases
        from evaluation.rundir import RunDir

        run = RunDir.open(args.run_dir)
        predictions = run.read_predictions("test")
        if predictions is None:
            raise UsageError(f"{args.run_dir} has no test predictions: --failure-cases needs a test split")
        print(f"failure cases: {failure_cases(predictions, run.file('failure_cases.png'), args.failure_cases, args.among_top)}")
    return EXIT_OK


def cmd_resolution_baseline(args) -> int:
    """`iaa resolution-baseline --store S`: the rating explained by photo size alone."""
    from pipeline.training.resolution_baseline import resolution_baseline

    resolution_baseline(args.store, args.out, log=lambda m: print(m, flush=True))
    return EXIT_OK


def cmd_ablate(args) -> int:
    """`iaa ablate`: heads x seeds (x folds) and a leaderboard."""
    from pipeline.training.ablate import run_ablation

    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    base = _train_config(args, head=heads[0], kind=args.kind, folds=args.folds)
    out = args.out or f"runs/ablate_{Path(args.store).stem}"
    if args.ensemble and args.seeds < 2:
        raise UsageError(f"--ensemble averages seeds: give --seeds 2 or more (received --seeds {args.seeds})")
    run_ablation(base, heads, list(range(args.seeds)), out, joint=not args.sequential,
                 log=lambda m: print(m, flush=True), folds=args.folds, ensemble=args.ensemble)
    print()
    print(Path(out, "leaderboard.md").read_text())
    print(f"leaderboard: {Path(out, 'leaderboard.md')} (and .csv); runs and reports under {out}/")
    return EXIT_OK


def cmd_describe_head(args) -> int:
    """`iaa describe-head NAME --input-shape S`: layers, parameters and the default recipe of a head."""
    from heads import create_head, get_head

    spec = get_head(args.head)
    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
        channels = [int(v) for v in (args.blocks or "").split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--input-shape and --blocks take comma-separated integers; received "
                         f"{args.input_shape!r}, {args.blocks!r}") from None
    offsets = np.cumsum([0] + channels)
    blocks = [(f"block{i}", int(offsets[i]), int(offsets[i + 1])) for i in range(len(channels))]
    if spec.needs_blocks and not blocks:
        blocks = [("all", 0, shape[-1])]
    model = create_head(args.head, input_shape=shape, n_bins=args.bins, blocks=blocks, n_attributes=args.attributes)
    from dataclasses import asdict

    from pipeline.training.fitting import TrainConfig, recipe_for

    info = {"head": spec.name, "trainer": spec.trainer, "input_shape": list(shape),
            "description": spec.description, "reference": spec.reference,
            "recipe": asdict(recipe_for(spec, TrainConfig(store="", head=spec.name)))}
    if hasattr(model, "count_params"):
        info["params"] = int(model.count_params())
        info["layers"] = [{"name": layer.name, "class": layer.__class__.__name__, "params": int(layer.count_params())}
                          for layer in model.layers]
    else:
        info["estimator"] = repr(model)
    if args.json:
        print(json.dumps(info, indent=2))
    elif "params" in info:
        for layer in info["layers"]:
            print(f"  {layer['name']:24s} {layer['class']:22s} {layer['params']:>12,}")
        print(f"{args.head} on {shape}: {info['params']:,} parameters; default recipe {info['recipe']}")
    else:
        print(f"{args.head}: scikit-learn {info['estimator']} ({spec.description})")
    return EXIT_OK



def cmd_fuse(args) -> int:
    """`iaa fuse RUN_A RUN_B`: late fusion of two runs on the same split."""
    from pipeline.training.fuse import fuse_runs

    fuse_runs(args.run_a, args.run_b, args.out, log=lambda m: print(m, flush=True))
    return EXIT_OK


COMMANDS = {"train": cmd_train, "ablate": cmd_ablate, "evaluate": cmd_evaluate, "describe-head": cmd_describe_head,
            "fuse": cmd_fuse, "resolution-baseline": cmd_resolution_baseline}
USES_TENSORFLOW = ("train", "ablate", "describe-head")
