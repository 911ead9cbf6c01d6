"""Published reference figures for bundled names: torchvision's weights metadata, from a data file.

The one place archdsl reads torchvision's published facts (ImageNet-1K
top-1, parameter count, GFLOPS, crop size; weights files, their hashes,
categories and preprocessing for pretrained weights). The figures are read from
``published.json`` beside this module, generated from torchvision's weights
enums (never a model builder) by ``python -m archdsl.published`` and checked
equal to them by the tests, so ``compare`` and ``scale --table`` need not
import torchvision (770 MB) to print a few numbers. A name the file does not
know returns None, so reports degrade to blank columns.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
from pathlib import Path

from .errors import WeightsError

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


def torch_home() -> Path:
    """``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch`` (torch.hub's rule)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache, "torch").expanduser()


def weight_entry(name: str, tag: str = "DEFAULT", missing_ok: bool = False) -> dict | None:
    """torchvision's published weights entry for a bundled name, read from its weights enums only.

    ``tag`` is ``"DEFAULT"`` or a tag such as ``"IMAGENET1K_V2"``. Returns
    ``{"name", "tag", "url", "file", "hash", "categories", "top1", "transforms"}``
    (``hash``: the sha256 prefix in the file name; ``transforms``: crop_size,
    resize_size, mean, std, interpolation, antialias). Raises
    :class:`~archdsl.WeightsError` naming the known tags (None with ``missing_ok``).
    """
    try:
        from torchvision.models import get_model_weights
        enum = get_model_weights(name)
    except ModuleNotFoundError:
        if missing_ok:
            return None
        raise WeightsError("published weights need torchvision: pip install 'archdsl[vision]'") from None
    except ValueError:
        if missing_ok:
            return None
        raise WeightsError(f"no published weights for {name!r}") from None
    tags = [w.name for w in enum]
    if tag != "DEFAULT" and tag not in tags:
        if missing_ok:
            return None
        raise WeightsError(f"{name} has no weights {tag!r}; published: DEFAULT, {', '.join(tags)}")
    weights = enum.DEFAULT if tag == "DEFAULT" else enum[tag]
    file = weights.url.rsplit("/", 1)[-1]
    match = re.search(r"-([a-f0-9]+)\.", file)
    preset = weights.transforms()
    return {"name": name, "tag": weights.name, "url": weights.url, "file": file,
            "hash": match.group(1) if match else None, "categories": list(weights.meta.get("categories") or []),
            "top1": weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1"),
            "transforms": {"crop_size": preset.crop_size[0], "resize_size": preset.resize_size[0],
                           "mean": list(preset.mean), "std": list(preset.std),
                           "interpolation": preset.interpolation.value, "antialias": preset.antialias}}


def weights_path(entry: dict) -> Path:
    """Where the weights file of ``entry`` is looked for: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return torch_home() / "hub" / "checkpoints" / entry["file"]


def verified_weights(entry: dict) -> Path:
    """The local weights file of ``entry``, its sha256 checked against the prefix in its name.

    Nothing is downloaded: a missing file raises one :class:`~archdsl.WeightsError`
    naming the file, its address and the folder to put it in.
    """
    path = weights_path(entry)
    if not path.is_file():
        raise WeightsError(f"weights file {entry['file']} not found; download {entry['url']} "
                           f"and put it in {path.parent}/ (archdsl does not download)")
    if entry["hash"]:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if not digest.hexdigest().startswith(entry["hash"]):
            raise WeightsError(f"{path}: sha256 {digest.hexdigest()[:12]}… does not match {entry['hash']} "
                               f"(a damaged or different file); download {entry['url']} again")
    return path


def transforms(name: str, tag: str = "DEFAULT"):
    """The inference preprocessing of ``name``'s published weights, as torchvision transforms v2.

    Resize (shorter side to ``resize_size``), centre crop, float in [0, 1],
    normalize; takes a PIL image or a uint8 tensor ``(3, H, W)``, returns a
    float tensor ``(3, crop, crop)``. Needs torchvision (the ``vision`` extra).
    """
    spec = weight_entry(name, tag)["transforms"]
    import torch
    from torchvision.transforms import InterpolationMode, v2
    # Resize and crop before ToImage: a PIL image is resized by PIL, as in torchvision's evaluation.
    return v2.Compose([
        v2.Resize(spec["resize_size"], interpolation=InterpolationMode(spec["interpolation"]),
                  antialias=spec["antialias"]),
        v2.CenterCrop(spec["crop_size"]),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(spec["mean"], spec["std"]),
    ])


if __name__ == "__main__":  # python -m archdsl.published  (rewrites published.json)
    DATA.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {DATA} ({len(_table.__wrapped__()['models'])} models)", file=sys.stderr)
