"""Published reference figures for bundled names: torchvision's weights metadata, from a data file.

The one place archdsl reads torchvision's published numbers (ImageNet-1K
top-1, parameter count, GFLOPS, crop size). They are read from
``published.json`` beside this module, generated from torchvision's weights
enums (never a model builder) by ``python -m archdsl.published`` and checked
equal to them by the tests, so ``compare`` and ``scale --table`` need not
import torchvision (770 MB) to print a few numbers. A name the file does not
know returns None, so reports degrade to blank columns.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

DATA = Path(__file__).with_name("published.json")


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    try:
        return json.loads(DATA.read_text())
    except (OSError, ValueError):  # a broken install: report blank columns, not a crash
        return {"source": None, "models": {}}


def published(name: str) -> dict | None:
    """torchvision's published facts about ``name``'s DEFAULT weights, or None.

    Returns ``{"name", "weights", "top1", "params", "gflops", "crop", "source"}``:
    ``top1`` in percent (None if unpublished), ``params`` the parameter count,
    ``gflops`` torchvision's ``_ops`` (GMACs at the crop), ``crop`` the centre
    crop in pixels the figures were measured at, ``source`` the release.
    """
    table = _table()
    facts = table["models"].get(name)
    return None if facts is None else {"name": name, **facts, "source": table["source"]}


def read_torchvision(name: str) -> dict | None:
    """The same facts read live from torchvision's weights enum (imports torchvision), or None."""
    try:
        from torchvision.models import get_model_weights
        weights = get_model_weights(name).DEFAULT
    except Exception:  # no torchvision, or a name it does not know
        return None
    meta = weights.meta
    top1 = meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    crop = getattr(weights.transforms, "keywords", {}).get("crop_size")
    return {"weights": str(weights), "top1": None if top1 is None else float(top1),
            "params": meta.get("num_params"), "gflops": meta.get("_ops"),
            "crop": crop if isinstance(crop, int) else None}


def generate() -> dict:
    """The data file's content: every torchvision classification model with ImageNet weights."""
    import torchvision
    from torchvision import models

    table = {}
    for name in sorted(models.list_models(module=models)):
        facts = read_torchvision(name)
        if facts is not None:
            table[name] = facts
    return {"source": f"torchvision {torchvision.__version__}", "models": table}


if __name__ == "__main__":  # python -m archdsl.published  (rewrites published.json)
    DATA.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {DATA} ({len(_table.__wrapped__()['models'])} models)", file=sys.stderr)
