"""The `iaa serve` subcommand (listed by `pipeline.cli`)."""
from __future__ import annotations

import os

from features.core.errors import EXIT_OK, UsageError
from pipeline.arguments import positive_int

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "IAA_SERVE_TOKEN"


def add_parsers(sub) -> None:
    """Adds `iaa serve` to the `iaa` parser."""
    from pipeline.scoring.serve.app import Limits

    d = Limits()
    sv = sub.add_parser("serve", help="a web page and JSON API scoring uploaded photos with a trained run")
    sv.add_argument("run_dir", help="a run directory, a model pack (NAME.iaa) or an ablation directory (its best run)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default loopback; any other needs --token or --no-auth)")
    sv.add_argument("--port", type=positive_int, default=8000)
    auth = sv.add_mutually_exclusive_group()
    auth.add_argument("--token", help=f"require `Authorization: Bearer TOKEN` on every API call (or set {TOKEN_ENV}; "
                                      f"the page asks for it once, or takes it from its address: /#token=TOKEN)")
    auth.add_argument("--no-auth", action="store_true", help="serve beyond loopback without a token (say you mean it)")
    sv.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                    help="let pages of this origin call the API from a browser (repeatable; default: none)")
    sv.add_argument("--time-limit", type=float, default=d.time_limit_s,
                    help=f"seconds a request may wait and score before 503 + Retry-After (default {d.time_limit_s:g})")
    sv.add_argument("--max-file-mb", type=float, default=d.max_file_mb, help=f"default {d.max_file_mb:g}")
    sv.add_argument("--max-files", type=positive_int, default=d.max_files, help=f"per request (default {d.max_files})")
    sv.add_argument("--max-megapixels", type=float, default=d.max_megapixels,
                    help=f"pixels per image, read from its header before decoding (default {d.max_megapixels:g})")
    sv.add_argument("--queue", type=positive_int, default=d.queue_size,
                    help=f"requests waiting before 503 + Retry-After (default {d.queue_size})")
    sv.add_argument("--teach-dir", help="teach it your taste at /teach: answers and the personal run are kept in "
                                        "this folder, and teaching resumes from it (needs --library)")
    sv.add_argument("--library", help="the folder of photos to teach with (searched recursively)")


def serve_token(args):
    """The token to require (None: none), refusing a non-loopback address without --token or --no-auth."""
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.no_auth:
        return None
    if token is None and args.host not in LOOPBACK:
        raise UsageError(f"--host {args.host} lets other machines reach the scorer: give --token TOKEN (or set "
                         f"{TOKEN_ENV}) to require it on every API call, or --no-auth to serve without one")
    if token is not None and len(token) < 16:
        raise UsageError(f"the token is {len(token)} characters: give at least 16 (e.g. python -c \"import secrets; "
                         f"print(secrets.token_urlsafe())\")")
    return token


def cmd_serve(args) -> int:
    """`iaa serve RUN_DIR`: the web page and JSON API on a port."""
    import uvicorn

    from pipeline.scoring.commands import _predictor
    from pipeline.scoring.serve.app import Limits, create_app

    token = serve_token(args)
    if min(args.time_limit, args.max_file_mb, args.max_megapixels) <= 0:
        raise UsageError("--time-limit, --max-file-mb and --max-megapixels must be positive")
    if bool(args.teach_dir) != bool(args.library):
        raise UsageError("--teach-dir and --library go together: the folder to keep answers in, and your photos")
    predictor = _predictor(args)
    teach = None
    if args.teach_dir:
        from pipeline.scoring.serve.teach import TeachState

        teach = TeachState(predictor, args.teach_dir, args.library, log=lambda m: print(m, flush=True))
    limits = Limits(max_file_mb=args.max_file_mb, max_files=args.max_files, max_megapixels=args.max_megapixels,
                    queue_size=args.queue, time_limit_s=args.time_limit)
    app = create_app(predictor, limits, token=token, cors_origins=args.cors_origin,
                     log=lambda line: print(line, flush=True), teach=teach)
    if args.host not in LOOPBACK and token is None:
        print(f"note: listening on {args.host} without a token (--no-auth): anyone who can reach it can use the scorer")
    print(f"serving {predictor.run.path.name} at http://{args.host}:{args.port}/  (API docs at /docs; Ctrl-C stops "
          f"after the work in progress){'; token required' if token else ''}", flush=True)
    if teach is not None:
        print(f"teach it your taste at http://{args.host}:{args.port}/teach ({len(teach.library.names)} photos, "
              f"{len(teach.answers)} answers so far; kept in {args.teach_dir})", flush=True)
    try:  # uvicorn stops gracefully on Ctrl-C / SIGTERM, then re-raises the signal (its usual exit status)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                    timeout_graceful_shutdown=args.time_limit)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a server is meant to stop: not an interruption to resume
    return EXIT_OK


COMMANDS = {"serve": cmd_serve}
USES_TENSORFLOW = tuple(COMMANDS)
