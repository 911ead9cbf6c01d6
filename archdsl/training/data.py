"""Training data: built-in offline datasets, image folders, and batch iterators.

``fashion-mnist`` (Debian's ``dataset-fashion-mnist`` IDX files) and ``digits``
(scikit-learn's 8x8 digits) are held in memory as uint8 tensors and augmented
a whole batch at a time on the training device, which is far cheaper than
per-image transforms. A folder in the class-per-subfolder layout is read with
torchvision's ``ImageFolder`` through a ``DataLoader`` (workers, pinned memory).

Images are brought to the spec's input: resized to its height and width, and
converted to its channel count (grey → RGB by repetition, RGB → grey by
luminance).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ArchError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_SPLIT_SEED = 0  # held-out splits never depend on the training seed, so eval sees the same split
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ArchError):
    """Data that cannot be found, read or fitted to the network."""


@dataclass
class TensorSplit:
    """Images (N, C, H, W) as uint8 and labels (N,) as int64, in memory."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    """A training and a validation split plus what the pipeline needs to know about them."""

    name: str
    classes: list[str]
    train: object          # TensorSplit, or a torch Dataset of (image tensor, label)
    val: object
    val_name: str          # "test", "val" or "held-out 10%": said in reports
    flip: bool             # default for random horizontal flips
    crop_padding: int      # default random-crop padding for small in-memory images
    mean: tuple = ()
    std: tuple = ()

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, TensorSplit)


# ---- reading ------------------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == b"\x1f\x8b"
        with (gzip.open if compressed else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path} is truncated: {len(data)} bytes, the header promises {expected}")
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def _idx_file(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(directory / stem)


def fashion_mnist(directory: Path | None = None) -> Dataset:
    """Fashion-MNIST from its four IDX files (train 60,000 / test 10,000)."""
    directory = Path(directory or os.environ.get("ARCHDSL_FASHION_MNIST", FASHION_MNIST_DIR))
    try:
        splits = []
        for prefix in ("train", "t10k"):
            images = read_idx(_idx_file(directory, f"{prefix}-images-idx3-ubyte"))
            labels = read_idx(_idx_file(directory, f"{prefix}-labels-idx1-ubyte"))
            splits.append(TensorSplit(torch.from_numpy(images.copy()).unsqueeze(1),
                                      torch.from_numpy(labels.astype(np.int64))))
    except FileNotFoundError as err:
        raise DataError(f"Fashion-MNIST is not installed ({err.args[0]} is missing); install it "
                        "with `sudo apt-get install dataset-fashion-mnist`, or point "
                        "ARCHDSL_FASHION_MNIST at a folder holding its IDX files") from None
    return Dataset("fashion-mnist", list(FASHION_MNIST_CLASSES), splits[0], splits[1], "test",
                   flip=True, crop_padding=2)


def digits(val_split: float) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images), split with a fixed seed."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset needs scikit-learn: pip install 'archdsl[train]'") from None
    bunch = load_digits()
    images = torch.from_numpy(np.round(bunch.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train, val = _split(len(labels), val_split)
    return Dataset("digits", [str(c) for c in bunch.target_names],
                   TensorSplit(images[train], labels[train]), TensorSplit(images[val], labels[val]),
                   f"held-out {val_split:.0%}", flip=False, crop_padding=0)


def _split(n: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(_SPLIT_SEED))
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise DataError(f"a validation fraction of {fraction} leaves no training images")
    return order[n_val:].sort().values, order[:n_val].sort().values


def image_folder(root: Path, val_split: float, channels: int, size: tuple, flip: bool = True) -> Dataset:
    """A class-per-subfolder folder: ``train/`` + ``val/`` (or ``test/``), or one folder split."""
    try:
        from torchvision.datasets import ImageFolder
    except ImportError:
        raise DataError("image folders are read with torchvision: pip install 'archdsl[vision]'") from None

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"no such dataset folder: {root} (or use the built-in fashion-mnist or digits)")
    if channels not in (1, 3):
        raise DataError(f"image folders need a spec with 1 or 3 input channels, not {channels}")
    train_tf, val_tf = folder_transforms(channels, size, flip)
    val_dir = next((root / d for d in ("val", "valid", "validation", "test") if (root / d).is_dir()), None)
    try:
        if (root / "train").is_dir() and val_dir is not None:
            train, val = ImageFolder(root / "train", train_tf), ImageFolder(val_dir, val_tf)
            if train.classes != val.classes:
                raise DataError(f"{root / 'train'} and {val_dir} hold different class folders")
            val_name, classes = val_dir.name, train.classes
        else:
            from torch.utils.data import Subset

            full_train, full_val = ImageFolder(root, train_tf), ImageFolder(root, val_tf)
            train_idx, val_idx = _split(len(full_train), val_split)
            train, val = Subset(full_train, train_idx.tolist()), Subset(full_val, val_idx.tolist())
            val_name, classes = f"held-out {val_split:.0%}", full_train.classes
    except (FileNotFoundError, RuntimeError) as err:
        raise DataError(f"cannot read the image folder {root}: {err}") from None
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))
    return Dataset(root.name, list(classes), train, val, val_name, flip=flip, crop_padding=0,
                   mean=mean, std=std)


def folder_transforms(channels: int, size: tuple, flip: bool = True):
    """torchvision transforms for PIL images: random crops and flips for training, centre crops else."""
    from torchvision import transforms as T

    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))
    mode = T.Grayscale(1) if channels == 1 else T.Lambda(_to_rgb)
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    if min(size) >= 64:  # ImageNet-style: scale augmentation, resize-then-centre-crop evaluation
        train = [T.RandomResizedCrop(size, scale=(0.25, 1.0), antialias=True)]
        val = [T.Resize([round(s / 0.875) for s in size], antialias=True), T.CenterCrop(size)]
    else:  # small images: keep the whole picture, translate a little
        train = [T.Resize(size, antialias=True), T.RandomCrop(size, padding=max(1, min(size) // 8))]
        val = [T.Resize(size, antialias=True)]
    if flip:
        train.append(T.RandomHorizontalFlip())
    return T.Compose([mode, *train, *tail]), T.Compose([mode, *val, *tail])


def eval_preprocessing(dataset: Dataset, input_shape) -> dict:
    """How validation images reach the network, recorded in checkpoints for ``archdsl predict``.

    Returns ``{"resize": [H', W'], "crop": [H, W], "mean", "std", "interpolation"}``:
    an image is resized to exactly ``resize`` (bilinear, antialiased), centre
    cropped to ``crop``, scaled to [0, 1], converted to the input's channels
    and normalised, as :func:`folder_transforms` and the in-memory batches do.
    """
    size = [int(s) for s in input_shape[1:]]
    resize = size
    if not dataset.in_memory and min(size) >= 64:
        resize = [round(s / 0.875) for s in size]
    return {"resize": resize, "crop": size, "mean": [float(m) for m in dataset.mean],
            "std": [float(s) for s in dataset.std], "interpolation": "bilinear"}


def _to_rgb(image):
    return image.convert("RGB")


def load_dataset(data: str, val_split: float, input_shape: tuple, flip: bool | None = None) -> Dataset:
    """``fashion-mnist``, ``digits`` or a folder, fitted to a network input of ``input_shape``.

    ``flip`` (random horizontal flips) defaults to the dataset's own choice:
    on for photos and clothes, off for digits.
    """
    if len(input_shape) != 3:
        raise DataError(f"training needs an image input (C x H x W), the spec takes {input_shape}")
    channels, size = input_shape[0], tuple(input_shape[1:])
    if data == "fashion-mnist":
        dataset = fashion_mnist()
    elif data == "digits":
        dataset = digits(val_split)
    elif Path(data).exists() or "/" in data or data.startswith("."):
        return image_folder(Path(data), val_split, channels, size, True if flip is None else flip)
    else:
        raise DataError(f"unknown dataset {data!r}: give a folder of class subfolders, "
                        "'fashion-mnist' or 'digits'")
    if channels not in (1, 3):
        raise DataError(f"{data} is greyscale; the spec takes {channels} channels (1 or 3 work)")
    sample = convert_channels(dataset.train.images[:20000].float() / 255, channels)
    dataset.mean = tuple(sample.mean(dim=(0, 2, 3)).tolist())
    dataset.std = tuple(sample.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    return dataset


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) → ``channels`` channels: grey → RGB by repetition, RGB → grey by luminance."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    if x.shape[1] == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True)
    raise DataError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
