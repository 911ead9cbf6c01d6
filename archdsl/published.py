"""Published reference figures for bundled names: torchvision's weights metadata, read only.

The one place archdsl reads torchvision's published numbers (ImageNet-1K
top-1, parameter count, GFLOPS, crop size). It imports torchvision lazily and
only its weights enums — never a model builder — and returns None when
torchvision is absent or does not know the name, so reports degrade to blank
columns.
"""

from __future__ import annotations


def published(name: str) -> dict | None:
    """torchvision's published facts about ``name``'s DEFAULT weights, or None.

    Returns ``{"name", "weights", "top1", "params", "gflops", "crop", "source"}``:
    ``top1`` in percent (None if unpublished), ``params`` the parameter count,
    ``gflops`` torchvision's ``_ops`` (GMACs at the crop), ``crop`` the centre
    crop in pixels the figures were measured at, ``source`` the release.
    """
    try:
        import torchvision
        from torchvision.models import get_model_weights
        weights = get_model_weights(name).DEFAULT
    except Exception:  # no torchvision, or a name it does not know
        return None
    meta = weights.meta
    top1 = meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    crop = getattr(weights.transforms, "keywords", {}).get("crop_size")
    return {"name": name, "weights": str(weights), "top1": None if top1 is None else float(top1),
            "params": meta.get("num_params"), "gflops": meta.get("_ops"),
            "crop": crop if isinstance(crop, int) else None,
            "source": f"torchvision {torchvision.__version__}"}
