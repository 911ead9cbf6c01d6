"""Class predictions for image files: ``archdsl predict`` as a Python API.

The weights decide the preprocessing and the class names:

* a published tag (``DEFAULT``, ``IMAGENET1K_V2``) of a bundled name: the
  weights file from the local torch cache (hash checked, nothing downloads),
  torchvision's inference transforms for it (:func:`archdsl.transforms`) and
  its ImageNet categories;
* an archdsl checkpoint or run directory: the input size, normalisation and
  class names recorded at training (older checkpoints: the run's
  ``spec.json``);
* a plain state dict (``.pth``/``.safetensors``): nothing is recorded, so the
  preprocessing is a guess (resize and centre crop to the spec's input,
  ImageNet mean/std) and the labels are class indices; both are reported in
  ``notes``.

Images are read with Pillow (the ``vision`` extra) and brought to the
network's channels (grey → RGB by repetition, RGB → grey by luminance).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ArchError
from .data import IMAGENET_MEAN, IMAGENET_STD

_TAG = re.compile(r"^(DEFAULT|[A-Z][A-Z0-9]*_[A-Z0-9_]+)$")  # DEFAULT, IMAGENET1K_V2, …


class PredictError(ArchError):
    """An image or weights file that cannot be used for prediction."""


@dataclass
class Predictor:
    """A network in eval mode with the preprocessing and class names that go with its weights."""

    model: torch.nn.Module
    prepare: object                  # PIL image → float (C, H', W'), normalised
    preprocess: dict                 # what ``prepare`` does, for reports
    classes: list | None             # None: labels are class indices
    channels: int
    name: str
    notes: list = field(default_factory=list)

    def label(self, index: int) -> str:
        if self.classes is not None and index < len(self.classes):
            return str(self.classes[index])
        return str(index)


# ---- preprocessing ------------------------------------------------------------------------

def resize_crop(resize, crop, mean, std, channels: int):
    """A PIL image → resized to exactly ``resize`` (bilinear, antialiased), centre cropped
    to ``crop``, scaled to [0, 1], converted to ``channels`` and normalised: the validation
    pipeline of ``archdsl train``."""
    from .data import convert_channels

    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def prepare(image) -> torch.Tensor:
        x = pil_to_uint8(image).float().div(255).unsqueeze(0)
        if tuple(x.shape[-2:]) != tuple(resize):
            x = F.interpolate(x, tuple(resize), mode="bilinear", antialias=True, align_corners=False)
        top, left = (x.shape[-2] - crop[0]) // 2, (x.shape[-1] - crop[1]) // 2
        x = x[..., top:top + crop[0], left:left + crop[1]]
        return ((convert_channels(x, channels)[0] - mean_t) / std_t).contiguous()
    return prepare


def guessed_preprocessing(input_shape) -> dict:
    """The preprocessing assumed when the weights record none: that of ``archdsl train`` on an
    image folder (resize, centre crop at 224/256 for inputs of 64 pixels and more), ImageNet
    mean/std for 3 channels, 0.5/0.5 otherwise."""
    channels, size = input_shape[0], [int(s) for s in input_shape[1:]]
    resize = [round(s / 0.875) for s in size] if min(size) >= 64 else size
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels, (0.5,) * channels)
    return {"resize": resize, "crop": size, "mean": list(mean), "std": list(std),
            "interpolation": "bilinear"}


def read_image(path, channels: int):
    """The image file ``path`` as a PIL image in mode ``L`` (``channels`` 1) or ``RGB`` (3).

    Raises :class:`PredictError` naming the file when it is missing or not an image.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ArchError("predict reads images with Pillow: pip install 'archdsl[vision]'") from None
    if channels not in (1, 3):
        raise PredictError(f"the network takes {channels}-channel input; image files give 1 or 3")
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: no such image file")
    try:
        with Image.open(path) as opened:
            return opened.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, ImportError) as err:
        # ImportError: a third-party PIL plugin (e.g. HEIF) tried to identify the file and is not installed
        raise PredictError(f"{path}: not a readable image ({err})") from None


def pil_to_uint8(image) -> torch.Tensor:
    """A PIL image in mode ``L`` or ``RGB`` → uint8 ``(C, H, W)``."""
    channels = len(image.getbands())
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(image.height, image.width, channels).permute(2, 0, 1).contiguous()


# ---- the network and its weights ----------------------------------------------------------

def load_predictor(spec: str, weights: str, *, variant: str | None = None,
                   overrides: dict | None = None) -> Predictor:
    """``spec`` with ``weights`` (a published tag, a checkpoint, a run directory or a state dict).

    Raises :class:`~archdsl.WeightsError` / :class:`CheckpointError` when the
    weights are missing or do not fit, :class:`~archdsl.SpecError` when the
    network does not end in one vector of class scores.
    """
    if _TAG.match(weights) and not Path(weights).exists():
        predictor = _published(spec, weights, variant, overrides or {})
    else:
        predictor = _from_file(spec, weights, variant, overrides or {})
    predictor.model.eval()
    return predictor


def _published(spec: str, tag: str, variant, overrides: dict) -> Predictor:
    from ..api import build, load
    from ..frontend.resolve import resolve
    from ..published import transforms, verified_weights, weight_entry

    if spec.endswith(".arch"):
        raise ArchError(f"--weights {tag} names published weights, which belong to a bundled model "
                        f"name (e.g. resnet50), not to the file {spec}")
    entry = weight_entry(spec, tag)
    arch = load(spec, variant or resolve(spec)[1], **overrides)
    _check_scores(arch)
    model = build(arch, weights=verified_weights(entry), strict=True)
    return Predictor(model, transforms(spec, entry["tag"]),
                     dict(entry["transforms"], source=f"{spec} {entry['tag']} weights"),
                     entry["categories"] or None, arch.input_shape[0], arch.name)


def _from_file(spec: str, weights: str, variant, overrides: dict) -> Predictor:
    from ..backends.weights import load_weights, state_fit
    from .checkpoint import CheckpointError, read_checkpoint, resolve_checkpoint_path
    from .model import resolve_spec, trained_params

    ckpt = read_checkpoint(resolve_checkpoint_path(weights))
    notes = []
    if ckpt.meta is None:
        resolved = resolve_spec(spec, variant, overrides)
        _check_scores(resolved.arch)
        model = resolved.arch.to_torch()
        load_weights(model, ckpt.weights, strict=True)
        classes, recorded = None, None
        notes.append(f"{ckpt.path} records no class names: labels are class indices")
    else:
        meta = ckpt.meta
        variant, params = trained_params(spec, variant, meta, overrides)
        resolved = resolve_spec(spec, variant, params, input_shape=meta.get("input_shape"))
        _check_scores(resolved.arch)
        model = resolved.arch.to_torch()
        fit = state_fit(model.state_dict(), ckpt.weights)
        if not fit.exact:
            raise CheckpointError(f"{ckpt.path} does not fit {resolved.arch.name}: {fit}; it was "
                                  f"trained as {meta.get('name')} ({meta.get('spec')})")
        model.load_state_dict(ckpt.weights)
        classes, recorded = meta.get("classes"), _recorded_preprocessing(ckpt)
    shape = resolved.arch.input_shape
    if recorded is None:
        recorded = dict(guessed_preprocessing(shape), source="guessed")
        notes.append(f"{ckpt.path} records no preprocessing; guessed: resize to "
                     f"{'x'.join(map(str, recorded['resize']))}, centre crop "
                     f"{'x'.join(map(str, recorded['crop']))}, mean {_short(recorded['mean'])}, "
                     f"std {_short(recorded['std'])}")
    prepare = resize_crop(recorded["resize"], recorded["crop"], recorded["mean"], recorded["std"], shape[0])
    return Predictor(model, prepare, recorded, classes, shape[0], resolved.arch.name, notes)


def _recorded_preprocessing(ckpt) -> dict | None:
    """The checkpoint's preprocessing, or one rebuilt from its run's ``spec.json``, or None."""
    meta = ckpt.meta
    if meta.get("preprocess"):
        return dict(meta["preprocess"], source="checkpoint")
    facts_file = ckpt.path.parent.parent / "spec.json"  # RUN_DIR/checkpoints/<file>
    try:
        facts = json.loads(facts_file.read_text())
    except (OSError, ValueError):
        return None
    if not facts.get("mean") or not meta.get("input_shape"):
        return None
    size = [int(s) for s in meta["input_shape"][1:]]
    return {"resize": size, "crop": size, "mean": facts["mean"], "std": facts["std"],
            "interpolation": "bilinear", "source": str(facts_file)}


def _check_scores(arch) -> None:
    from ..errors import SpecError, shape_text

    if arch.returns_dict or len(arch.output_shape) != 1:
        shown = "several outputs" if arch.returns_dict else f"a {shape_text(arch.output_shape)} tensor"
        raise SpecError(f"{arch.name} outputs {shown}; predict needs one vector of class scores")


def _short(values) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"


# ---- predicting ---------------------------------------------------------------------------

@torch.no_grad()
def predict_images(predictor: Predictor, images: list, topk: int = 5, device: str | None = None) -> list:
    """Top-``topk`` classes of each image file: ``[{"file", "top": [{"rank", "index", "label",
    "probability"}]}]``, probabilities from a softmax over all classes, highest first.

    Every file is read before the network runs, so a bad file fails fast
    with :class:`PredictError` naming it.
    """
    from .distributed import pick_device
    from .evaluate import logits_of

    if topk < 1:
        raise ArchError(f"--topk must be at least 1, got {topk}")
    batch = torch.stack([predictor.prepare(read_image(p, predictor.channels)) for p in images])
    dev = pick_device(device)
    model = predictor.model.to(dev)
    probabilities = logits_of(model(batch.to(dev))).float().softmax(dim=1).cpu()
    k = min(topk, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    return [{"file": str(path),
             "top": [{"rank": r + 1, "index": int(i), "label": predictor.label(int(i)), "probability": float(v)}
                     for r, (v, i) in enumerate(zip(values[n].tolist(), indices[n].tolist()))]}
            for n, path in enumerate(images)]


def predict(spec: str, weights: str, images: list, *, topk: int = 5, variant: str | None = None,
            overrides: dict | None = None, device: str | None = None) -> dict:
    """Classify image files with ``spec`` and ``weights``; returns one JSON-ready report:
    ``{"spec", "name", "weights", "preprocess", "labels", "notes", "images"}`` (``images`` as
    :func:`predict_images` gives them, ``labels``: where the class names came from)."""
    predictor = load_predictor(spec, weights, variant=variant, overrides=overrides)
    results = predict_images(predictor, images, topk, device)
    labels = "class indices" if predictor.classes is None else \
        "published categories" if _TAG.match(weights) and not Path(weights).exists() else "checkpoint"
    return {"spec": spec, "name": predictor.name, "weights": weights, "preprocess": predictor.preprocess,
            "labels": labels, "notes": predictor.notes, "images": results}
