"""`archdsl train` / `archdsl eval`: learning, crash safety, resume, DDP, fine-tuning.

Everything runs on CPU with a tiny spec on scikit-learn's 8x8 digits, one
thread per process (bitwise comparisons need a fixed thread count, and small
convolutions are fastest that way).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from archdsl import SpecError  # noqa: E402
from archdsl.cli import main as cli  # noqa: E402
from archdsl.training import (CheckpointError, DataError, TrainConfig, latest_checkpoint,  # noqa: E402
                              read_checkpoint, train)
from archdsl.training.checkpoint import read_state  # noqa: E402
from archdsl.training.data import read_idx  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = """\
arch tiny
input 1 x 8 x 8
param num_classes = 10
param width = 8
network:
    stem: conv(width, 3, padding = 1, bias = false) -> batchnorm -> relu
    body: conv(width * 2, 3, stride = 2, padding = 1, bias = false) -> batchnorm -> relu
    adaptive_avgpool(1);  flatten
    dropout(0.1)
    fc: linear(num_classes)
"""
FAST = dict(data="digits", batch_size=32, lr=0.1, quiet=True, seed=0, workers=0)
NO_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("spec") / "tiny.arch"
    path.write_text(TINY)
    return str(path)


@pytest.fixture(scope="module")
def digits_run(tiny, tmp_path_factory) -> Path:
    """A finished 2-epoch run on digits (shared, never modified: tests copy it)."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    torch.set_num_threads(1)
    train(TrainConfig(spec=tiny, epochs=2, out=str(out), **FAST))
    return out


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def _weights(run: Path, epoch: int) -> dict:
    return read_checkpoint(run / "checkpoints" / f"epoch-{epoch:04d}.safetensors").weights


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ---- learning and outputs ------------------------------------------------------------------

def test_loss_decreases_on_digits(digits_run):
    history = _history(digits_run)
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["val_loss"] < 2.2  # ln(10) = 2.30 is chance
    assert history[1]["val_top1"] > 0.3


def test_run_directory_holds_everything(digits_run):
    names = {p.name for p in digits_run.iterdir()}
    assert {"spec.arch", "spec.json", "config.json", "metrics.csv", "metrics.jsonl",
            "curves.png", "checkpoints"} <= names
    assert (digits_run / "spec.arch").read_text() == TINY
    facts = json.loads((digits_run / "spec.json").read_text())
    assert facts["params"] == {"num_classes": 10, "width": 8} and facts["classes"][0] == "0"
    assert TrainConfig.load(digits_run / "config.json").epochs == 2
    assert (digits_run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (digits_run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")
    ckpt = read_checkpoint(digits_run / "checkpoints" / "best.safetensors")
    assert ckpt.meta["params"]["num_classes"] == 10 and ckpt.weights["fc.weight"].shape == (10, 16)
    state = read_state(read_checkpoint(digits_run / "checkpoints" / "epoch-0002.safetensors"))
    assert state["epoch"] == 2 and set(state) >= {"optimizer", "step", "rng", "history"}


def test_eval_reports_top1_top5_and_per_class(digits_run, tiny, capsys):
    assert cli(["eval", tiny, "--checkpoint", str(digits_run), "--data", "digits", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    best = max(row["val_top1"] for row in _history(digits_run))
    assert report["top1"] == pytest.approx(best) and report["top5"] >= report["top1"]
    assert report["images"] == 180 and len(report["per_class"]) == 10
    assert sum(row["total"] for row in report["per_class"]) == 180
    assert cli(["eval", tiny, "--checkpoint", str(digits_run), "--data", "digits"]) == 0
    assert "top-5" in capsys.readouterr().out


# ---- crash safety and resume ---------------------------------------------------------------

def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tiny, tmp_path):
    epochs = 4
    reference = tmp_path / "reference"
    train(TrainConfig(spec=tiny, epochs=epochs, out=str(reference), **FAST))

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "archdsl", "train", tiny, "--data", "digits", "--epochs", str(epochs),
           "--batch-size", "32", "--lr", "0.1", "--seed", "0", "--workers", "0", "--quiet",
           "--out", str(killed)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = killed / "checkpoints" / "epoch-0001.safetensors"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    assert not (killed / "checkpoints" / f"epoch-{epochs:04d}.safetensors").exists()

    cfg = TrainConfig.load(killed / "config.json")
    summary = train(cfg, resume=True)
    assert summary["epochs"] == epochs
    mine, theirs = _weights(killed, epochs), _weights(reference, epochs)
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    assert strip(_history(killed)) == strip(_history(reference))


def _copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


@pytest.mark.parametrize("damage", ["truncate_weights", "flip_weight_byte", "truncate_state"])
def test_damaged_checkpoint_is_reported_and_previous_one_used(digits_run, tiny, tmp_path, damage, capsys):
    run = _copy_run(digits_run, tmp_path)
    weights = run / "checkpoints" / "epoch-0002.safetensors"
    state = run / "checkpoints" / "epoch-0002.state.pt"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "flip_weight_byte":
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0xFF  # inside the tensor data, past the JSON header
        weights.write_bytes(bytes(data))
    else:
        state.write_bytes(state.read_bytes()[: len(state.read_bytes()) // 2])

    with pytest.raises(CheckpointError, match="truncated or corrupted|corrupted"):
        read_state(read_checkpoint(weights))
    warnings = []
    checkpoint, restored = latest_checkpoint(run / "checkpoints", warn=warnings.append)
    assert checkpoint.epoch == 1 and restored["epoch"] == 1 and len(warnings) == 1

    if damage != "truncate_state":  # the CLI says what is wrong, without a traceback
        assert cli(["eval", tiny, "--checkpoint", str(weights), "--data", "digits"]) == 1
        err = capsys.readouterr().err
        assert "epoch-0002.safetensors" in err and "Traceback" not in err

    cfg = TrainConfig.load(run / "config.json").model_copy(update={"epochs": 3, "out": str(run)})
    summary = train(cfg, resume=True)
    assert summary["epochs"] == 3 and [r["epoch"] for r in _history(run)] == [1, 2, 3]


def test_new_run_refuses_to_overwrite_and_resume_refuses_changes(digits_run, tiny, tmp_path, capsys):
    run = _copy_run(digits_run, tmp_path)
    assert cli(["train", tiny, "--data", "digits", "--out", str(run), "--quiet"]) == 1
    assert "--resume" in capsys.readouterr().err
    assert cli(["train", "--resume", str(run), "--lr", "0.5"]) == 1
    assert "--lr cannot change" in capsys.readouterr().err
    assert cli(["train", "--resume", str(run)]) == 0  # already finished: says so, trains nothing
    assert "finished" in capsys.readouterr().err


# ---- many processes ------------------------------------------------------------------------

def test_torchrun_two_processes_on_cpu(tiny, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "archdsl", "train", tiny, "--data", "digits", "--epochs", "1", "--batch-size", "32",
           "--workers", "0", "--quiet", "--out", str(out)]
    result = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert files == ["best.safetensors", "epoch-0001.safetensors", "epoch-0001.state.pt"]
    facts = json.loads((out / "spec.json").read_text())
    assert facts["resolved"]["world_size"] == 2
    assert result.stdout.count("curves ") == 1  # only rank 0 reports
    (row,) = _history(out)
    # 1,617 training images: 809 per rank, 25 full batches of 32 each, both ranks counted
    assert row["images_per_s"] * row["epoch_s"] == pytest.approx(2 * 25 * 32)


# ---- transfer learning ---------------------------------------------------------------------

def _digit_folder(root: Path, classes=(0, 1, 7), per_class=24) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for c in classes:
        (root / f"digit{c}").mkdir(parents=True)
        images = bunch.images[bunch.target == c][:per_class]
        for i, image in enumerate(images):
            pixels = (image * 255 / 16).astype("uint8")
            Image.fromarray(pixels, mode="L").save(root / f"digit{c}" / f"{i}.png")
    return root


@pytest.mark.parametrize("source", ["checkpoint", "state_dict_pth"])
def test_finetune_on_fewer_classes(digits_run, tiny, tmp_path, source, capsys):
    folder = _digit_folder(tmp_path / "three")
    init = digits_run / "checkpoints" / "best.safetensors"
    before = read_checkpoint(init).weights
    if source == "state_dict_pth":
        init = tmp_path / "weights.pth"
        torch.save(before, init)
    out = tmp_path / "finetuned"
    train(TrainConfig(spec=tiny, data=str(folder), epochs=2, out=str(out), init_from=str(init),
                      freeze=True, val_split=0.25, **{k: v for k, v in FAST.items() if k != "data"}))
    log = capsys.readouterr().err
    assert "loaded 12/14 tensors" in log and "skipped fc.weight" in log and "skipped fc.bias" in log
    after = _weights(out, 2)
    assert after["fc.weight"].shape == (3, 16)
    for key in before:  # frozen backbone: weights and BatchNorm statistics unchanged
        if not key.startswith("fc."):
            assert torch.equal(before[key], after[key]), key
    assert _history(out)[-1]["val_top1"] > 0.5  # 3 classes: chance is 1/3


def test_backbone_lr_scale_groups(tiny):
    from archdsl.training.model import head_modules, resolve_spec
    from archdsl.training.optim import param_groups

    resolved = resolve_spec(tiny, None, {}, 3)
    head = head_modules(resolved)
    assert head == ["fc"]
    groups = param_groups(resolved.arch.to_torch(), head, 1e-4, 0.1)
    by_name = {g["group"]: g for g in groups}
    assert by_name["head/decay"]["lr_scale"] == 1.0 and by_name["backbone/decay"]["lr_scale"] == 0.1
    assert by_name["backbone/no_decay"]["weight_decay"] == 0.0  # norms and biases
    assert all(p.ndim <= 1 for p in by_name["backbone/no_decay"]["params"])


@pytest.mark.parametrize("name, expected", [("resnet18", {"fc"}),
                                            ("googlenet", {"fc", "aux1.fc2", "aux2.fc2"})])
def test_head_detection_on_bundled_specs(name, expected):
    from archdsl.training.model import head_modules, resolve_spec

    assert set(head_modules(resolve_spec(name, None, {}, 10))) == expected


# ---- specs and data ------------------------------------------------------------------------

def test_classifier_follows_the_data_or_fails_clearly(tmp_path):
    from archdsl.training.model import resolve_spec

    assert resolve_spec("resnet18", None, {}, 7).arch.output_shape == (7,)
    fixed = tmp_path / "fixed.arch"
    fixed.write_text(TINY.replace("param num_classes = 10\n", "").replace("linear(num_classes)", "linear(5)"))
    with pytest.raises(SpecError, match="no `num_classes` parameter"):
        resolve_spec(str(fixed), None, {}, 10)
    with pytest.raises(SpecError, match="fewer than the data's 10 classes"):
        resolve_spec("resnet18", None, {"num_classes": 4}, 10)


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_reader(tmp_path, compressed):
    import numpy as np

    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes()
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compressed else data)
    assert (read_idx(path) == images).all()
    path.write_bytes(data[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    from archdsl.training.data import fashion_mnist

    monkeypatch.setenv("ARCHDSL_FASHION_MNIST", str(tmp_path))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist()


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_loads():
    from archdsl.training.data import load_dataset

    ds = load_dataset("fashion-mnist", 0.1, (1, 28, 28))
    assert ds.train.images.shape == (60000, 1, 28, 28) and len(ds.val) == 10000
    assert ds.train.labels.bincount().tolist() == [6000] * 10
    assert 0.25 < ds.mean[0] < 0.32 and 0.3 < ds.std[0] < 0.4


def test_augmentation_is_reproducible_and_shape_preserving():
    from archdsl.training.loaders import random_crop, random_flip

    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a, b = random_crop(x, 1, gen()), random_crop(x, 1, gen())
    assert a.shape == x.shape and torch.equal(a, b)
    flipped = random_flip(x, gen())
    assert all(torch.equal(f, i) or torch.equal(f, i.flip(2)) for f, i in zip(flipped, x))


def test_lr_schedule_warmup_and_cosine():
    from archdsl.training.optim import LRSchedule

    s = LRSchedule("cosine", 1.0, total_steps=100, warmup_steps=10, steps_per_epoch=10)
    assert s.factor(0) == pytest.approx(1 / 11) and s.factor(9) == pytest.approx(10 / 11)
    assert s.factor(10) == pytest.approx(1.0) and s.factor(55) == pytest.approx(0.5)
    assert s.factor(99) < 0.01
    step = LRSchedule("step", 1.0, 100, 0, 10, step_size=3, gamma=0.1)
    assert step.factor(29) == 1.0 and step.factor(30) == pytest.approx(0.1)


def test_bad_options_fail_clearly(tiny, capsys):
    assert cli(["train", tiny]) == 1
    assert "--data" in capsys.readouterr().err
    assert cli(["train", tiny, "--data", "digits", "--freeze"]) == 1
    assert "--init-from" in capsys.readouterr().err
    assert cli(["train", tiny, "--data", "digits", "--epochs", "0"]) == 1
    assert "--epochs" in capsys.readouterr().err
    assert cli(["train", tiny, "--data", "nowhere-dataset"]) == 1
    assert "unknown dataset" in capsys.readouterr().err


# ---- GPU paths -----------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_fp16_needs_cuda(tiny, tmp_path, capsys):
    assert cli(["train", tiny, "--data", "digits", "--amp", "fp16", "--out", str(tmp_path / "r")]) == 1
    assert "needs a CUDA device" in capsys.readouterr().err


@NO_GPU
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_channels_last(tiny, tmp_path, amp):
    summary = train(TrainConfig(spec=tiny, epochs=2, out=str(tmp_path / amp), device="cuda", amp=amp,
                                channels_last=True, clip_grad=1.0, **FAST))
    history = _history(tmp_path / amp)
    assert summary["epochs"] == 2 and history[1]["train_loss"] < history[0]["train_loss"]
    assert json.loads((tmp_path / amp / "spec.json").read_text())["resolved"]["amp"] == amp
