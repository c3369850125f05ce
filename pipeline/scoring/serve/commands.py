"""The `iaa serve` subcommand (listed by `pipeline.cli`)."""
from __future__ import annotations

from features.core.errors import EXIT_OK
from pipeline.arguments import positive_int


def add_parsers(sub) -> None:
    """Adds `iaa serve` to the `iaa` parser."""
    from pipeline.scoring.serve.app import Limits

    d = Limits()
    sv = sub.add_parser("serve", help="a web page and JSON API scoring uploaded photos with a trained run")
    sv.add_argument("run_dir", help="a run directory (or an ablation directory: its best run)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default loopback; 0.0.0.0 exposes it to the network)")
    sv.add_argument("--port", type=positive_int, default=8000)
    sv.add_argument("--max-file-mb", type=float, default=d.max_file_mb, help=f"default {d.max_file_mb:g}")
    sv.add_argument("--max-files", type=positive_int, default=d.max_files, help=f"per request (default {d.max_files})")
    sv.add_argument("--max-megapixels", type=float, default=d.max_megapixels,
                    help=f"pixels per image, read from its header before decoding (default {d.max_megapixels:g})")
    sv.add_argument("--queue", type=positive_int, default=d.queue_size,
                    help=f"requests waiting before 503 + Retry-After (default {d.queue_size})")


def cmd_serve(args) -> int:
    """`iaa serve RUN_DIR`: the web page and JSON API on a port."""
    import uvicorn

    from pipeline.scoring.commands import _predictor
    from pipeline.scoring.serve.app import Limits, create_app

    predictor = _predictor(args)
    limits = Limits(max_file_mb=args.max_file_mb, max_files=args.max_files, max_megapixels=args.max_megapixels,
                    queue_size=args.queue)
    app = create_app(predictor, limits)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}: anyone who can reach this machine can use the scorer")
    print(f"serving {predictor.run.path.name} at http://{args.host}:{args.port}/  (API docs at /docs; Ctrl-C stops)",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


COMMANDS = {"serve": cmd_serve}
USES_TENSORFLOW = tuple(COMMANDS)
