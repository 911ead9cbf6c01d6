"""CLI polish: `train --input/--img-size`, spec paths shown as the user gave them, completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
TINY = """\
arch tiny
input 1 x 8 x 8
param num_classes = 10
network:
    stem: conv(4, 3, padding = 1, bias = false) -> batchnorm -> relu
    adaptive_avgpool(1);  flatten
    fc: linear(num_classes)
"""


# ---- train at another input size ------------------------------------------------------------

@pytest.fixture
def one_thread():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow  # three short runs and an eval: ~10 s on two cores
def test_train_img_size_sets_the_network_input_and_resume_keeps_it(tmp_path, one_thread, capsys):
    pytest.importorskip("sklearn")
    from archdsl.training import read_checkpoint

    spec, run = tmp_path / "tiny.arch", tmp_path / "run"
    spec.write_text(TINY)
    base = ["train", str(spec), "--data", "digits", "--val-split", "0.95", "--batch-size", "64", "--quiet",
            "--device", "cpu", "--out", str(run)]
    assert cli([*base, "--epochs", "1", "--img-size", "16"]) == 0
    assert json.loads((run / "config.json").read_text())["input"] == [16, 16]
    assert json.loads((run / "spec.json").read_text())["input_shape"] == [1, 16, 16]
    meta = read_checkpoint(run / "checkpoints" / "epoch-0001.safetensors").meta
    assert meta["input_shape"] == [1, 16, 16] and meta["preprocess"]["crop"] == [16, 16]
    assert cli(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert read_checkpoint(run / "checkpoints" / "epoch-0002.safetensors").meta["input_shape"] == [1, 16, 16]
    capsys.readouterr()
    assert cli(["train", "--resume", str(run), "--epochs", "3", "--img-size", "12"]) == 1
    assert "--input cannot change when resuming" in capsys.readouterr().err
    assert cli(["eval", str(spec), "--checkpoint", str(run), "--data", "digits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 1707  # 95% of 1,797 held out, at 16x16


def test_train_input_reaches_the_batches(tmp_path, one_thread):
    """resnet18 on 8x8 digits trains at the size asked for, not at its own 224x224."""
    pytest.importorskip("sklearn")
    from archdsl.training import TrainConfig
    from archdsl.training.distributed import Context
    from archdsl.training.loop import Trainer
    import torch

    cfg = TrainConfig(spec="resnet18", data="digits", input=[3, 32, 32], batch_size=8, epochs=1,
                      device="cpu", out=str(tmp_path / "run"), quiet=True)
    trainer = Trainer(cfg, Context(0, 1, 0, torch.device("cpu")))
    trainer.prepare()
    assert trainer.resolved.arch.input_shape == (3, 32, 32)
    x, _ = next(iter(trainer.train_batches.epoch(0)))
    assert tuple(x.shape) == (8, 3, 32, 32)
    assert trainer.resolved.arch.output_shape == (10,)


def test_input_options_are_checked(tmp_path, capsys):
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    with pytest.raises(SystemExit):
        cli(["train", str(spec), "--data", "digits", "--img-size", "0"])
    with pytest.raises(SystemExit):
        cli(["train", str(spec), "--data", "digits", "--input", "3x32"])
    capsys.readouterr()
    assert cli(["train", str(spec), "--data", "digits", "--input", "1x8x8", "--img-size", "8"]) == 1
    assert "--input or --img-size, not both" in capsys.readouterr().err


# ---- spec paths as the user gave them -------------------------------------------------------

@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    (tmp_path / "lib").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "lib" / "blocks.arch").write_text(
        "block unit(c):\n    conv(c, 3, padding = 1);  relu;  conv(c, 9)\n")
    (tmp_path / "net.arch").write_text('import "lib/blocks.arch"\narch net\ninput 3 x 8 x 8\nnetwork:\n'
                                       "    unit(4)\n    flatten\n")
    (tmp_path / "ok.arch").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_errors_in_imported_files_are_named_relative(project, monkeypatch, capsys):
    assert cli(["check", "./net.arch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lib/blocks.arch:2:38: error: kernel 9") and str(project) not in err
    assert "called from net.arch:5:5" in err
    monkeypatch.chdir(project / "sub")
    assert cli(["check", "../net.arch"]) == 1
    assert capsys.readouterr().err.startswith("../lib/blocks.arch:2:38:")
    assert cli(["check", str(project / "net.arch")]) == 1  # given absolute: shown absolute
    assert capsys.readouterr().err.startswith(str(project / "lib" / "blocks.arch") + ":2:38:")


def test_missing_import_names_its_roots_relative(project, capsys):
    (project / "net.arch").write_text(
        'import "lib/none.arch"\narch net\ninput 3 x 8 x 8\nnetwork:\n    flatten\n')
    assert cli(["check", "net.arch"]) == 1
    err = capsys.readouterr().err
    assert "expected: a file inside ., " in err and f"{project}," not in err


def test_summary_and_json_keep_the_relative_path(project, capsys):
    assert cli(["summary", "./ok.arch"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "tiny  (ok.arch)"
    assert cli(["summary", "ok.arch", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "ok.arch"
    assert cli(["check", "ok.arch"]) == 0
    assert capsys.readouterr().out.startswith("ok.arch: ok")


# ---- shell completion ---------------------------------------------------------------------

def _complete(line: str) -> str:
    """What argcomplete offers for ``line`` (it writes to file descriptor 8)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), _ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n",
               COMP_LINE=line, COMP_POINT=str(len(line)))
    done = subprocess.run(["bash", "-c", f'"{sys.executable}" -m archdsl 8>&1 9>/dev/null'],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_completion_offers_commands_and_options():
    pytest.importorskip("argcomplete")
    assert "predict" in _complete("archdsl pre").split()
    assert "--topk" in _complete("archdsl predict --to").split()


def test_no_completion_cost_without_the_shell_asking():
    code = ("import importlib, sys; m = importlib.import_module('archdsl.cli.main'); "
            "m.complete(m.build_parser()); print('argcomplete' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
