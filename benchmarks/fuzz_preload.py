"""Imported once by the fuzzer's fork server, so each case starts warm: torch, archdsl and its
parser tables are loaded before any case runs (and nothing else has run)."""

import torch  # noqa: F401
import torch.fx  # noqa: F401

import archdsl  # noqa: F401
import archdsl.api  # noqa: F401
from archdsl.frontend.parser import _parser

_parser()
