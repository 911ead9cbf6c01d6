"""Batch iterators: one pass per epoch, sharded across processes, reproducible from (seed, epoch).

Both kinds yield ``(images, labels)`` on the training device, images as
normalised float tensors shaped like the network's input. Shuffling follows
``DistributedSampler`` (a permutation seeded by seed + epoch, each rank a
stride of it); augmentation draws from a generator seeded by (seed, epoch,
rank). So a run resumed at an epoch boundary sees exactly the batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from .data import Dataset, TensorSplit, convert_channels


def derive_seed(*parts) -> int:
    """A 63-bit seed from ``parts`` (e.g. seed, epoch, rank, purpose): stable across runs and machines."""
    text = "/".join(str(p) for p in parts).encode()
    return int(hashlib.sha256(text).hexdigest()[:15], 16)


def shard_indices(n: int, train: bool, seed: int, epoch: int, rank: int, world: int) -> torch.Tensor:
    """This rank's sample indices for one epoch.

    Training: ``DistributedSampler``'s shuffled, padded, strided order. Evaluation:
    every sample exactly once across ranks (no padding, so metrics are exact).
    """
    if not train:
        return torch.arange(rank, n, world)
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return torch.tensor(list(iter(sampler)), dtype=torch.long)


class Preprocess:
    """uint8 batches → float, resized, channel-converted, augmented (training) and normalised."""

    def __init__(self, input_shape, mean, std, flip: bool, pad: int, device, channels_last: bool):
        self.channels, self.size = input_shape[0], tuple(input_shape[1:])
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.flip, self.pad, self.device, self.channels_last = flip, pad, device, channels_last

    def __call__(self, x: torch.Tensor, train: bool, gen: torch.Generator | None = None) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).float().div_(255)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, self.size, mode="bilinear", antialias=True, align_corners=False)
        x = convert_channels(x, self.channels)
        if train and self.pad:
            x = random_crop(x, self.pad, gen)
        if train and self.flip:
            x = random_flip(x, gen)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator | None) -> torch.Tensor:
    """Zero-pad by ``pad`` and cut each image back to size at its own random offset."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen).to(x.device)
    rows = (offsets[:, :1] + torch.arange(h, device=x.device))[:, :, None]   # (N, H, 1)
    cols = (offsets[:, 1:] + torch.arange(w, device=x.device))[:, None, :]   # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # advanced indices come first: N,H,W,C


def random_flip(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    mask = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(3), x)


class TensorBatches:
    """Batches of an in-memory split, gathered and augmented on the device."""

    def __init__(self, split: TensorSplit, batch_size: int, train: bool, seed: int, rank: int,
                 world: int, prep: Preprocess):
        device = prep.device
        # a few tens of MB: keep the whole split on the accelerator, gather batches there
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.rank, self.world, self.prep = rank, world, prep
        per_rank = len(shard_indices(len(split), train, seed, 0, rank, world))
        # drop a ragged last training batch: tiny batches make BatchNorm statistics noisy
        drop = train and per_rank >= batch_size
        self.num_batches = per_rank // batch_size if drop else -(-per_rank // batch_size)
        self.num_images = self.num_batches * batch_size if drop else per_rank

    def __len__(self) -> int:
        return self.num_batches

    def epoch(self, epoch: int):
        """Yield this rank's ``(images, labels)`` batches for ``epoch``."""
        order = shard_indices(len(self.labels), self.train, self.seed, epoch, self.rank, self.world)
        order = order.to(self.images.device)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, epoch, self.rank, "augment"))
        for b in range(self.num_batches):
            sel = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.prep(self.images[sel], self.train, gen), self.labels[sel]


class FolderBatches:
    """Batches of a torch ``Dataset`` of transformed images, through a ``DataLoader``."""

    def __init__(self, dataset, batch_size: int, train: bool, seed: int, rank: int, world: int,
                 workers: int, device, channels_last: bool):
        self.dataset, self.batch_size, self.train, self.seed = dataset, batch_size, train, seed
        self.rank, self.world, self.workers = rank, world, workers
        self.device, self.channels_last = torch.device(device), channels_last
        per_rank = len(shard_indices(len(dataset), train, seed, 0, rank, world))
        self.drop = train and per_rank >= batch_size
        self.num_batches = per_rank // batch_size if self.drop else -(-per_rank // batch_size)
        self.num_images = self.num_batches * batch_size if self.drop else per_rank

    def __len__(self) -> int:
        return self.num_batches

    def epoch(self, epoch: int):
        """Yield this rank's ``(images, labels)`` batches for ``epoch``."""
        order = shard_indices(len(self.dataset), self.train, self.seed, epoch, self.rank, self.world)
        # the generator seeds the workers' RNGs (their random crops and flips)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, epoch, self.rank, "workers"))
        loader = DataLoader(self.dataset, self.batch_size, sampler=order.tolist(), drop_last=self.drop,
                            num_workers=self.workers, pin_memory=self.device.type == "cuda",
                            generator=gen)
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


def make_batches(dataset: Dataset, input_shape, batch_size: int, *, seed: int, rank: int, world: int,
                 device, channels_last: bool, flip: bool | None = None, crop_padding: int | None = None,
                 workers: int | None = None, splits=("train", "val")):
    """Batch iterators for ``dataset`` fitted to ``input_shape``: one per name in ``splits``.

    The training split is shuffled and augmented; the validation split is neither.
    """
    if workers is None:
        import os
        workers = min(8, max(1, (os.cpu_count() or 2) // max(1, world) - 1))
    if dataset.in_memory:
        flip = dataset.flip if flip is None else flip
        pad = dataset.crop_padding if crop_padding is None else crop_padding
        prep = Preprocess(input_shape, dataset.mean, dataset.std, flip, pad, device, channels_last)
    out = []
    for name in splits:
        train = name == "train"
        split = dataset.train if train else dataset.val
        if dataset.in_memory:
            out.append(TensorBatches(split, batch_size, train, seed, rank, world, prep))
        else:
            out.append(FolderBatches(split, batch_size, train, seed, rank, world, workers, device,
                                     channels_last))
    return tuple(out)
