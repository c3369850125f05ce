"""`iaa`: the command line (`python -m pipeline` too). `make` targets are thin wrappers over it.

    iaa [--verbose] extract | describe | store-info | compact          (pipeline/extraction/commands.py)
        | train | ablate | evaluate | describe-head | fuse             (pipeline/training/commands.py)
        | score | best-shot | video | explain | export | evaluate-on  (pipeline/scoring/commands.py)
        | serve                                                        (pipeline/scoring/serve/commands.py)
        | pack | convert | describe-run                                 (pipeline/scoring/sharing.py)
        | personalize                                                  (pipeline/training/personalize.py)

Each stage's command module adds its subcommands; the choices in their help (datasets, backbones, kinds,
views, heads) come from the registries. Every expected error (`features.core.errors.IAAError`) is printed
as one line with exit status 2, here and only here; the exit codes live beside the error root.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from features.core.errors import EXIT_INCOMPLETE, EXIT_USAGE, IAAError
from features.core.quiet import VERBOSE_ENV, quiet_tensorflow
from pipeline.extraction import commands as extraction_commands
from pipeline.scoring import commands as scoring_commands
from pipeline.scoring import sharing as sharing_commands
from pipeline.scoring.serve import commands as serve_commands
from pipeline.training import commands as training_commands
from pipeline.training import personalize as personal_commands

COMMAND_MODULES = (extraction_commands, training_commands, scoring_commands, serve_commands, sharing_commands,
                   personal_commands)
COMMANDS = {name: fn for module in COMMAND_MODULES for name, fn in module.COMMANDS.items()}
USES_TENSORFLOW = tuple(name for module in COMMAND_MODULES for name in module.USES_TENSORFLOW)


def build_parser() -> argparse.ArgumentParser:
    """The `iaa` parser; the choices in its help come from the registries."""
    parser = argparse.ArgumentParser(prog="iaa", description="Extract once, train many heads: "
                                     "image aesthetics assessment on stored CNN features.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up messages (also IAA_VERBOSE=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs one `iaa` command; returns its exit status."""
    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    if args.command in USES_TENSORFLOW:
        quiet_tensorflow()
    try:
        return COMMANDS[args.command](args)
    except IAAError as exc:
        print(f"iaa {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\niaa {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INCOMPLETE


if __name__ == "__main__":
    sys.exit(main())
