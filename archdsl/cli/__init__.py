"""The ``archdsl`` command line: one module per command, over the Python API."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
