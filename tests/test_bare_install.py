"""A bare install (no extras) gives one-line errors naming the extra, never a traceback.

The fast test hides the optional packages inside one subprocess
(``sys.modules[name] = None`` makes their import fail as if absent). The slow
test builds the wheel, installs it without dependencies into a fresh virtual
environment that sees exactly the required dependency closure (torch, numpy,
lark, networkx, pydantic, safetensors and what they require; symlinked
through a ``.pth`` file, so nothing downloads) and runs every command there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ["matplotlib", "torchvision", "PIL", "sklearn", "onnx", "onnxruntime", "graphviz", "argcomplete"]
TINY = """\
arch tiny
input 1 x 8 x 8
param num_classes = 10
network:
    conv(4, 3, padding = 1) -> batchnorm -> relu
    adaptive_avgpool(1);  flatten
    fc: linear(num_classes)
"""

# Runs archdsl's CLI in-process with the optional packages hidden; prints [[rc, stderr], …].
HIDDEN_RUNNER = """\
import contextlib, io, json, sys
for name in {optional!r}:
    sys.modules[name] = None
from archdsl.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    results.append([rc, err.getvalue()])
print(json.dumps(results))
"""


def _tiny_files(tmp_path: Path) -> dict:
    torch = pytest.importorskip("torch")
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    sys.path.insert(0, str(ROOT))
    try:
        from archdsl import build
        weights = tmp_path / "tiny.pth"
        torch.save(build(str(spec)).state_dict(), weights)
    finally:
        sys.path.remove(str(ROOT))
    image = tmp_path / "image.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")  # never decoded: reading it needs Pillow first
    folder = tmp_path / "folder" / "a"
    folder.mkdir(parents=True)
    return {"spec": str(spec), "weights": str(weights), "image": str(image),
            "folder": str(tmp_path / "folder"), "out": str(tmp_path / "out")}


def _one_line_error(rc: int, err: str, *needles) -> None:
    assert rc == 1, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error"), err
    for needle in needles:
        assert needle in err, err


def test_missing_optional_packages_give_one_line_errors(tmp_path):
    f = _tiny_files(tmp_path)
    commands = [
        ["compare", "resnet18", "--plot", str(tmp_path / "chart.png")],
        ["train", f["spec"], "--data", "digits", "--epochs", "1", "--out", f["out"] + "1", "--device", "cpu"],
        ["train", f["spec"], "--data", f["folder"], "--epochs", "1", "--out", f["out"] + "2", "--device", "cpu"],
        ["predict", f["spec"], "--weights", f["weights"], f["image"]],
        ["predict", "resnet18", "--weights", "DEFAULT", f["image"]],
    ]
    done = subprocess.run([sys.executable, "-c", HIDDEN_RUNNER.format(optional=OPTIONAL), json.dumps(commands)],
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    (plot, digits, folder, predict_file, predict_tag) = json.loads(done.stdout)
    _one_line_error(*plot, "--plot needs matplotlib", "pip install 'archdsl[vision]'")
    _one_line_error(*digits, "scikit-learn", "pip install 'archdsl[train]'")
    _one_line_error(*folder, "torchvision", "pip install 'archdsl[vision]'")
    _one_line_error(*predict_file, "Pillow", "pip install 'archdsl[vision]'")
    _one_line_error(*predict_tag, "torchvision", "pip install 'archdsl[vision]'")
    assert not (tmp_path / "chart.png").exists()


def test_an_unexpected_missing_module_is_one_line_too(monkeypatch, capsys):
    from archdsl.cli import main as cli_main
    from archdsl.cli import summary

    def broken(args):
        import matplotlib.not_there  # noqa: F401 - a module that exists nowhere

    monkeypatch.setattr(summary, "run", broken)
    assert cli_main(["summary", "resnet18"]) == 1
    _one_line_error(1, capsys.readouterr().err, "pip install 'archdsl[vision]'")


# ---- the fresh virtual environment ----------------------------------------------------------

def _required_closure() -> list:
    """The installed distributions archdsl requires without extras, transitively."""
    from importlib import metadata

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo, seen = [Requirement(r) for r in project["dependencies"]], {}
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen:
            continue
        seen[key] = dist = metadata.distribution(req.name)
        todo += [Requirement(r) for r in dist.requires or []]
    return list(seen.values())


def _link_closure(folder: Path) -> list:
    """Symlink each required distribution's top-level files (and .dist-info) into ``folder``."""
    folder.mkdir()
    names = []
    for dist in _required_closure():
        site = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            if (site / top).exists() and not (folder / top).exists() and not top.endswith(".pth"):
                (folder / top).symlink_to(site / top)
        names.append(dist.metadata["Name"])
    return names


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fresh_venv_without_extras_runs_every_command(tmp_path):
    pytest.importorskip("packaging")
    dist_dir, venv = tmp_path / "dist", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist_dir), str(ROOT)], check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", *map(str, dist_dir.glob("archdsl-*.whl"))], check=True, timeout=300,
                   capture_output=True)
    linked = _link_closure(tmp_path / "closure")
    assert {"torch", "numpy", "lark", "networkx", "pydantic", "safetensors"} <= {n.lower() for n in linked}
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "required-closure.pth").write_text(str(tmp_path / "closure") + "\n")
    probe = subprocess.run([str(python), "-c", "import importlib.util as u, json; "
                            f"print(json.dumps([n for n in {OPTIONAL!r} if u.find_spec(n)]))"],
                           check=True, capture_output=True, text=True, cwd=tmp_path)
    assert json.loads(probe.stdout) == [], "optional packages leak into the fresh venv"

    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    image = tmp_path / "image.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    script = venv / "bin" / "archdsl"
    env = dict(os.environ, OMP_NUM_THREADS="2", TORCH_HOME=str(tmp_path / "torch"))
    env.pop("PYTHONPATH", None)

    def run(*argv, ok=(0, 1)):
        done = subprocess.run([str(script), *argv], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=300)
        assert done.returncode in ok and "Traceback" not in done.stderr, (argv, done.stderr)
        if done.returncode:
            assert done.stderr.count("\n") == 1, (argv, done.stderr)
        return done

    from archdsl.cli.main import COMMANDS

    assert "predict" in run("--help", ok=(0,)).stdout
    for command in COMMANDS:
        run(command, "--help", ok=(0,))
    assert "output 10" in run("check", "tiny.arch", ok=(0,)).stdout
    run("compile", "tiny.arch", ok=(0,))
    assert "tiny" in run("summary", "tiny.arch", ok=(0,)).stdout
    assert "archdsl[vision]" in run("compare", "resnet18", "--plot", "chart.png", ok=(1,)).stderr
    assert "archdsl[train]" in run("train", "tiny.arch", "--data", "digits", "--epochs", "1", ok=(1,)).stderr
    from archdsl.training.data import FASHION_MNIST_DIR

    installed = Path(os.environ.get("ARCHDSL_FASHION_MNIST", FASHION_MNIST_DIR)).is_dir()
    trained = run("train", "tiny.arch", "--data", "fashion-mnist", "--epochs", "1", "--batch-size", "256",
                  "--out", "run", "--quiet", "--device", "cpu", ok=(0,) if installed else (1,))
    if installed:  # training works without matplotlib: the curves are left out, with a note
        assert "matplotlib is not installed: no curves.png" in trained.stderr
        assert (tmp_path / "run" / "checkpoints" / "best.safetensors").is_file()
    run("export", "tiny.arch", "--format", "onnx", "-o", "tiny.onnx", ok=(1,))
    run("export", "tiny.arch", "--format", "torchscript", "-o", "tiny.pt")
    weights = "run" if trained.returncode == 0 else "nothing.pth"
    assert "error" in run("predict", "tiny.arch", "--weights", weights, "image.png", ok=(1,)).stderr
    run("render", "tiny.arch", "-o", "tiny.svg")
    run("render", "tiny.arch", "-o", "tiny.dot", ok=(0,))
