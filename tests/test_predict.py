"""`archdsl predict`: preprocessing and labels from the weights, top-k output, errors.

A checkpoint comes from `archdsl train` on scikit-learn's 8x8 digits (one
short epoch, trained at 12x12 so predict must resize); published weights are a
livened torchvision ResNet-18 placed under torchvision's file name in a
temporary TORCH_HOME (nothing downloads).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
Image = pytest.importorskip("PIL.Image")

from archdsl.cli import main as cli  # noqa: E402
from archdsl.training import TrainConfig, read_checkpoint, train  # noqa: E402

from conftest import liven, place_published_weights  # noqa: E402

TINY = """\
arch tiny
input 1 x 8 x 8
param num_classes = 10
param width = 8
network:
    stem: conv(width, 3, padding = 1, bias = false) -> batchnorm -> relu
    body: conv(width * 2, 3, stride = 2, padding = 1, bias = false) -> batchnorm -> relu
    adaptive_avgpool(1);  flatten
    fc: linear(num_classes)
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.arch"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory) -> Path:
    """One short epoch on digits at 12x12 (most images held out: the test needs a checkpoint,
    not accuracy)."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(spec=str(tiny), data="digits", epochs=1, batch_size=32, quiet=True,
                          val_split=0.8, input=[12, 12], device="cpu", out=str(out)))
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory) -> tuple[list, torch.Tensor]:
    """Three digits images as greyscale PNGs, and the same images as uint8 (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("images")
    images = torch.from_numpy((load_digits().images[:3] * (255 / 16)).round().astype("uint8"))
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"digit{i}.png")
        Image.fromarray(image.numpy(), "L").save(paths[-1])
    return paths, images.unsqueeze(1)


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_checkpoint_predictions_match_the_training_pipeline(run, tiny, digit_pngs, capsys):
    from archdsl.training.loaders import Preprocess
    from archdsl.training.model import resolve_spec

    paths, images = digit_pngs
    assert cli(["predict", str(tiny), "--weights", str(run), *map(str, paths), "--topk", "10", "--json"]) == 0
    report = _json(capsys)
    ckpt = read_checkpoint(run / "checkpoints" / "best.safetensors")
    pre = ckpt.meta["preprocess"]
    assert report["preprocess"]["source"] == "checkpoint" and pre["crop"] == [12, 12]
    assert report["labels"] == "checkpoint" and report["notes"] == []
    # the reference: the network at its trained 12x12 input, fed by the validation pipeline
    model = resolve_spec(str(tiny), None, {}, input_shape=[12, 12]).arch.to_torch()
    model.load_state_dict(ckpt.weights)
    prep = Preprocess((1, 12, 12), pre["mean"], pre["std"], False, 0, torch.device("cpu"), False)
    with torch.no_grad():
        expected = model.eval()(prep(images, train=False)).softmax(1)
    for n, image in enumerate(report["images"]):
        assert image["file"] == str(paths[n])
        top = image["top"]
        probs = [row["probability"] for row in top]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert [row["rank"] for row in top] == list(range(1, 11))
        for row in top:
            assert row["label"] == ckpt.meta["classes"][row["index"]]
            assert row["probability"] == pytest.approx(expected[n, row["index"]].item(), abs=1e-5)


def test_table_output_and_topk(run, tiny, digit_pngs, capsys):
    paths, _ = digit_pngs
    assert cli(["predict", str(tiny), "--weights", str(run), str(paths[0]), "--topk", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(paths[0]) and len(lines) == 4
    ranks = [line.split() for line in lines[1:]]
    assert [r[0] for r in ranks] == ["1", "2", "3"] and all(r[2].endswith("%") for r in ranks)


def test_state_dict_guesses_preprocessing_and_says_so(tiny, digit_pngs, tmp_path, capsys):
    from archdsl import build

    paths, _ = digit_pngs
    torch.manual_seed(0)
    weights = tmp_path / "random.pth"
    torch.save(build(str(tiny)).state_dict(), weights)
    assert cli(["predict", str(tiny), "--weights", str(weights), str(paths[1]), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "records no class names" in captured.err and "guessed: resize to 8x8" in captured.err
    assert report["labels"] == "class indices" and report["preprocess"]["source"] == "guessed"
    top = report["images"][0]["top"]
    assert len(top) == 5 and all(row["label"] == str(row["index"]) for row in top)


def test_missing_and_unreadable_images_are_named(run, tiny, digit_pngs, tmp_path, capsys):
    paths, _ = digit_pngs
    assert cli(["predict", str(tiny), "--weights", str(run), str(paths[0]), str(tmp_path / "nope.png")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / 'nope.png'}: no such image file"
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    assert cli(["predict", str(tiny), "--weights", str(run), str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{broken}: not a readable image" in err and "Traceback" not in err
    assert cli(["predict", str(tiny), "--weights", str(tmp_path / "no.pth"), str(paths[0])]) == 1
    assert "no such checkpoint" in capsys.readouterr().err


def test_published_tag_uses_torchvision_preprocessing_and_categories(tmp_path, monkeypatch, capsys):
    torchvision = pytest.importorskip("torchvision")
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    oracle = liven(torchvision.models.resnet18()).eval()
    place_published_weights(tmp_path, monkeypatch, "resnet18", "DEFAULT", oracle.state_dict())
    generator = torch.Generator().manual_seed(0)
    picture = tmp_path / "picture.png"  # not square: the shorter side is resized, then cropped
    Image.fromarray(torch.randint(0, 256, (150, 200, 3), generator=generator, dtype=torch.uint8).numpy(),
                    "RGB").save(picture)
    assert cli(["predict", "resnet18", "--weights", "DEFAULT", str(picture), "--json"]) == 0
    report = _json(capsys)
    assert report["labels"] == "published categories" and report["preprocess"]["crop_size"] == 224
    with torch.no_grad():
        expected = oracle(weights.transforms()(Image.open(picture)).unsqueeze(0)).softmax(1)[0]
    top = report["images"][0]["top"]
    assert top[0]["index"] == int(expected.argmax())
    for row in top:
        assert row["label"] == weights.meta["categories"][row["index"]]
        assert row["probability"] == pytest.approx(expected[row["index"]].item(), abs=1e-5)


def test_published_tag_without_the_file_says_where_to_put_it(tmp_path, monkeypatch, digit_pngs, capsys):
    pytest.importorskip("torchvision")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    paths, _ = digit_pngs
    assert cli(["predict", "resnet18", "--weights", "IMAGENET1K_V1", str(paths[0])]) == 1
    err = capsys.readouterr().err
    assert "resnet18-f37072fd.pth not found" in err and str(tmp_path / "hub" / "checkpoints") in err
    assert cli(["predict", "examples/small_resnet.arch", "--weights", "DEFAULT", str(paths[0])]) == 1
    assert "bundled model name" in capsys.readouterr().err
