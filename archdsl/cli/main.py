"""The ``archdsl`` command line: a thin layer over the Python API.

Each subcommand lives in ``archdsl/cli/<name>.py`` and exposes
``register(subparsers)``. Errors print to stderr and exit 1 (2 for bad usage);
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__
from ..errors import ArchError

# The commands, in the order ``--help`` lists them; each is a module of this package.
COMMANDS = ["compile", "check", "list", "ops", "summary", "render", "compare", "scale", "train", "eval",
            "export", "predict"]


# Optional packages → the extra that installs them (pyproject.toml's optional-dependencies).
EXTRAS = {"matplotlib": "vision", "torchvision": "vision", "PIL": "vision", "sklearn": "train",
          "onnx": "export", "onnxruntime": "export", "argcomplete": "completion"}


def missing_package(module: str | None) -> str:
    """One line saying what to install for a module that failed to import."""
    top = (module or "").split(".")[0]
    if top in EXTRAS:
        return f"this needs {top}, which is not installed: pip install 'archdsl[{EXTRAS[top]}]'"
    return f"{top or 'a module'} is not installed (a broken install?): pip install --force-reinstall archdsl"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archdsl",
        description="Write convolutional networks as .arch specs; compile, inspect, scale and train them.",
        epilog="SPEC is a .arch file or a bundled model name (see `archdsl list`). "
               "Specs are untrusted input: imports stay inside the spec's directory tree, "
               "--spec-path / ARCHDSL_SPEC_PATH directories and the bundled library, and evaluation "
               "is bounded (ARCHDSL_LIMITS raises the limits; see docs/security.md). "
               "`archdsl COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"archdsl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def complete(parser: argparse.ArgumentParser) -> None:
    """Shell completion through argcomplete (the ``completion`` extra), when the shell asks for it.

    argcomplete sets ``_ARGCOMPLETE`` when it runs the command to complete a
    word; otherwise nothing is imported, so ordinary runs pay nothing.
    """
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)  # prints the candidates and exits


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    complete(parser)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        spec_path = getattr(args, "spec_path", None) or []
        if spec_path or "archdsl.frontend.resolve" in sys.modules:  # --help and list never load the parser
            from ..frontend.resolve import set_spec_path
            set_spec_path(spec_path)
        return args.func(args) or 0
    except ArchError as err:
        if args.debug:
            raise
        print(err.format(), file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `archdsl list | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ModuleNotFoundError as err:  # an optional package the command needs (bare install)
        if args.debug:
            raise
        print(f"error: {missing_package(err.name)}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
