"""Untrusted specs and weights: every fault class of a hostile or careless input is refused
cleanly, at its place in the text, quickly and within memory."""

from __future__ import annotations

import keyword
import os
import pickle
import time
import warnings

import pytest
import torch

import archdsl
from archdsl.api import SizeError, check_allocatable
from archdsl.cli import main
from archdsl.errors import SpecError, SpecSyntaxError, WeightsError
from archdsl.frontend import limits
from archdsl.frontend.names import MODULE_ATTRIBUTES, PYTHON_KEYWORDS, RESERVED

from conftest import ROOT

HEADER = "arch t\ninput 3 x 8 x 8\n"
NET = "network:\n    relu\n"


@pytest.fixture(autouse=True, scope="module")
def _warm_parser():
    archdsl.loads(HEADER + NET)  # build the parser tables once, outside the timed calls


def located(path, text_or_none, line, column, words, *, cls=SpecError, call=None):
    """Load ``path`` (or run ``call``), expect ``cls`` at line:column whose text has ``words``."""
    t0 = time.process_time()  # CPU time: the wall time on a shared machine measures the neighbours
    with pytest.raises(cls) as info:
        (call or (lambda: archdsl.load(path)))()
    elapsed = time.process_time() - t0
    err = info.value
    text = err.format()
    assert (err.line, err.column) == (line, column), text
    assert text.startswith(f"{err.span.source.path}:{line}:{column}: "), text
    for word in words:
        assert word in text, text
    assert elapsed < 2.0, f"{elapsed:.2f} s: {text}"
    return err


# ---- 1. imports stay inside their roots ------------------------------------------------------------

@pytest.mark.parametrize("target, words", [
    ("/etc/passwd", ["an import path must be relative"]),
    ("/proc/self/environ", ["an import path must be relative"]),
    ("../../../etc/passwd.arch", ["may not climb out", "'..'"]),
    ("sub/../../x.arch", ["may not climb out"]),
    ("notes.txt", ["only .arch files can be imported"]),
    ("~/x.arch", ["must be relative"]),
])
def test_imports_refused_by_their_text(write_spec, target, words):
    path = write_spec(f'import "{target}"\n' + HEADER + NET)
    err = located(path, None, 1, 8, [f"cannot import '{target}'"] + words)
    assert "root:" not in err.format() and "PATH" not in err.format()  # nothing of the target is quoted


def test_imports_refused_by_what_they_lead_to(tmp_path):
    (tmp_path / "lib").mkdir()
    os.symlink("/etc/passwd", tmp_path / "lib" / "evil.arch")
    os.symlink("/dev/zero", tmp_path / "zero.arch")
    os.mkfifo(tmp_path / "pipe.arch")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.arch"
    outside.write_text("block b:\n    relu\n")
    os.symlink(outside, tmp_path / "escape.arch")
    spec = tmp_path / "net.arch"
    for target, words in [("lib/evil.arch", ["leads outside the import roots"]),
                          ("zero.arch", ["leads outside the import roots"]),
                          ("escape.arch", ["leads outside the import roots"]),
                          ("pipe.arch", ["not a regular file"]),
                          ("missing.arch", ["no such file", "--spec-path"])]:
        spec.write_text(f'import "{target}"\n' + HEADER + NET)
        err = located(str(spec), None, 1, 8, words)
        assert "root:x" not in err.format()


def test_spec_path_and_environment_extend_the_roots(tmp_path, monkeypatch, capsys):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "extra.arch").write_text("block extra:\n    relu\n")
    project = tmp_path / "project"
    project.mkdir()
    spec = project / "net.arch"
    spec.write_text('import "extra.arch"\n' + HEADER + "network:\n    extra\n")
    located(str(spec), None, 1, 8, ["no such file"])
    monkeypatch.setenv("ARCHDSL_SPEC_PATH", str(shared))
    assert archdsl.load(str(spec)).output_shape == (3, 8, 8)
    monkeypatch.delenv("ARCHDSL_SPEC_PATH")
    assert main(["check", str(spec), "--spec-path", str(shared)]) == 0
    assert main(["check", str(spec)]) == 1
    assert "cannot import 'extra.arch'" in capsys.readouterr().err


def test_diamond_imports_load_once(tmp_path):
    (tmp_path / "a.arch").write_text('import "layers.arch"\nimport "c.arch"\nblock a_:\n    relu\n')
    (tmp_path / "b.arch").write_text('import "layers.arch"\nimport "c.arch"\nblock b_:\n    relu\n')
    (tmp_path / "c.arch").write_text("block c_:\n    relu\n")
    spec = tmp_path / "net.arch"
    spec.write_text('import "a.arch"\nimport "b.arch"\nimport "layers.arch"\n' + HEADER
                    + "network:\n    a_\n    b_\n    c_\n    conv_bn_act(8, 3)\n")
    assert archdsl.load(str(spec)).output_shape == (8, 8, 8)


def test_an_error_in_an_imported_spec_is_located_there(tmp_path):
    (tmp_path / "lib.arch").write_text("block b:\n    rleu\n")
    spec = tmp_path / "net.arch"
    spec.write_text('import "lib.arch"\n' + HEADER + "network:\n    b\n")
    err = located(str(spec), None, 2, 5, ["unknown op or block 'rleu'", "called from"])
    assert err.span.source.path.endswith("lib.arch")


# ---- 2. bounded evaluation ----------------------------------------------------------------------------

BUDGET_CASES = [
    ("huge power", "param a = ((10**1000)**1000)**1000\n", 3, 13, ["the power would exceed 1024 bits"]),
    ("power of a huge base", "param a = (10**300)**5\n", 3, 11, ["would exceed 1024 bits"]),
    ("huge product", "fn big(n) = 10 if n == 0 else big(n - 1) * big(n - 1)\nparam a = big(12)\n", 3, 31,
     ["the product would exceed 1024 bits"]),
    ("repeat 10**9", "network:\n    repeat 10**9:\n        let x = 1\n", 4, 12,
     ["repeat count of 1,000,000,000 is more than the limit of 10,000"]),
    ("nested ranges", "network:\n    for i in range(10**4):\n        for j in range(10**4):\n"
     "            let x = 1\n", 5, 9, ["more than 250,000 steps"]),
    ("range too long", "param a = range(10**6)\n", 3, 11, ["1,000,000 items is too long"]),
    ("sum of lists", "param a = sum([[0]] * 1000000, [])\n", 3, 15, ["too long (limit 100,000)"]),
    ("exponential recursion", "fn fib(n) = n if n < 2 else fib(n - 1) + fib(n - 2)\nparam a = fib(40)\n", 3, 33,
     ["more than 250,000 steps"]),
    ("list doubling", "fn grow(xs, n) = xs if n == 0 else grow(xs + xs, n - 1)\nparam a = grow([1], 40)\n",
     3, 41, ["too long"]),
    ("nested list blow-up", "param a = [[0] * 50000] * 50000\n", 3, 11, ["too long"]),
    ("string of a huge list", "param a = str([10**300] * 10000)\n", 3, 11, ["str()", "too long"]),
    ("no base case", "fn f(n) = f(n + 1)\nparam a = f(0)\n", 3, 11,
     ["too many nested calls of f (limit 100)", "base case"]),
    ("op cap", "network:\n    repeat 6000:\n        relu\n        relu\n", 5, 9,
     ["more than 10,000 ops"]),
    ("huge channels", "network:\n    conv(2**62, 3, padding = 1)\n", 4, 5,
     ["more elements than a tensor can hold"]),
    ("float overflow", "param a = 10.0 ** 400\n", 3, 11, ["too large for a number"]),
]


@pytest.mark.parametrize("case, body, line, column, words", BUDGET_CASES, ids=[c[0] for c in BUDGET_CASES])
def test_evaluation_is_bounded(write_spec, case, body, line, column, words):
    if "network:" not in body:
        body += NET
    path = write_spec(HEADER + body)
    located(path, None, line, column, words)


def test_a_large_spec_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.arch"
    path.write_text(HEADER + "# padding\n" * 1_100_000)
    with pytest.raises(SpecError, match="more than the limit of 1,000,000"):
        archdsl.load(str(path))
    with pytest.raises(SpecError, match="more than the limit"):
        archdsl.loads(HEADER + " " * 2_000_000 + "\n" + NET)


def test_limits_are_the_same_through_set_and_scale(capsys):
    assert main(["check", "resnet18", "--set", "num_classes=(10**1000)**1000"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("--set num_classes:1:2: error: the power would exceed 1024 bits"), err
    assert main(["scale", "resnet50", "--width", "1e300"]) == 1
    assert "more elements than a tensor can hold" in capsys.readouterr().err
    assert main(["scale", "efficientnet", "--phi", "1e300"]) == 1
    assert "too large for a number" in capsys.readouterr().err
    with pytest.raises(SizeError, match="bits is too large"):
        archdsl.load("resnet18", num_classes=10**400)


def test_limits_can_be_changed(write_spec, monkeypatch):
    path = write_spec(HEADER + "network:\n    repeat 20:\n        relu\n")
    assert archdsl.load(path).graph.number_of_nodes() == 21
    with limits.using(max_repeat=10):
        located(path, None, 4, 12, ["a repeat count of 20 is more than the limit of 10"])
    with limits.using(max_ops=15):
        located(path, None, 5, 9, ["more than 15 ops"])
    monkeypatch.setenv("ARCHDSL_LIMITS", "max_repeat=10, max_ops=1_000")
    assert limits.current().max_ops == 1000
    located(path, None, 4, 12, ["more than the limit of 10"])
    with limits.using(max_repeat=100):  # an override wins over the environment
        assert archdsl.load(path).graph.number_of_nodes() == 21
    monkeypatch.setenv("ARCHDSL_LIMITS", "max_opz=1")
    with pytest.raises(limits.LimitError, match="max_opz=1"):
        archdsl.load(path)


def test_the_zoo_is_far_below_every_limit():
    with limits.using(max_steps=50_000, max_ops=2_000):  # a fifth of the defaults
        for name in ("efficientnet_v2_l", "efficientnet_b7", "densenet201", "inception_v3"):
            archdsl.load(name)


# ---- 3. nothing check accepts crashes compile ---------------------------------------------------------

@pytest.mark.parametrize("label", ["class", "None", "elif", "lambda", "eval", "forward", "training", "to",
                                   "_modules", "__class__", "graph", "code", "self", "__foo__"])
def test_labels_that_would_break_the_module_are_refused(write_spec, label):
    path = write_spec(HEADER + f"network:\n    conv(4, 1)\n    {label}: conv(4, 1)\n")
    err = located(path, None, 5, 5, [f"'{label}'"])
    # words of the .arch language itself (elif) are refused by the parser
    assert "cannot name a layer" in err.message or (label == "elif" and "unexpected" in err.message)
    path = write_spec(HEADER + f"network:\n    {label}:\n        relu\n", "scope.arch")
    located(path, None, 4, 5, [f"'{label}' cannot name a layer"])


def test_reserved_names_cover_the_live_torch_classes():
    from torch import fx, nn

    live = set(dir(nn.Module)) | set(dir(nn.Module())) | set(dir(fx.GraphModule))
    live |= set(dir(fx.GraphModule(nn.Module(), fx.Graph())))
    live = {n for n in live if not (n.startswith("__") and n.endswith("__"))}
    assert live <= MODULE_ATTRIBUTES, sorted(live - MODULE_ATTRIBUTES)
    assert set(keyword.kwlist) <= PYTHON_KEYWORDS and "self" in RESERVED


def test_ordinary_labels_compile_and_run():
    spec = HEADER + "network:\n" + "".join(f"    {n}: conv(3, 1)\n" for n in
                                           ("torch", "x", "print", "match", "fx", "outputs", "layer"))
    model = archdsl.build(archdsl.loads(spec)).eval()
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    assert {"torch", "print", "match"} <= dict(model.named_children()).keys()


def test_networks_too_large_to_allocate_are_refused_first(write_spec, capsys):
    path = write_spec(HEADER + "network:\n    conv(1000000, 1)\n    flatten\n    linear(1000000)\n")
    arch = archdsl.load(path)  # check accepts it: nothing is allocated
    with pytest.raises(SizeError) as info:
        archdsl.build(arch)
    assert "64,000,005,000,000 parameters and buffers (256.0 TB in float32)" in str(info.value)
    assert "2,147,483,648" in str(info.value)
    assert main(["compile", path]) == 1
    assert "nothing was allocated" in capsys.readouterr().err
    small = archdsl.load("resnet18")
    with pytest.raises(SizeError, match="11,699,132 parameters and buffers"):
        check_allocatable(small, max_params=1_000_000)
    assert main(["compile", "resnet18", "--max-params", "1000000"]) == 1
    assert "more than the limit of 1,000,000" in capsys.readouterr().err


def test_a_join_of_one_tensor_with_itself_is_refused(write_spec):
    path = write_spec(HEADER + "network:\n    concat:\n        identity\n        identity\n")
    located(path, None, 4, 5, ["branches 1 and 2 of this join are the same tensor",
                               "branch 1 (line 5) passes its input through"])
    path = write_spec(HEADER + "network:\n    concat:\n        identity\n        relu\n", "ok.arch")
    assert archdsl.load(path).output_shape == (6, 8, 8)


# ---- 4. no tracebacks, and errors where they belong -------------------------------------------------

NESTED = [
    ("nested negation", "param a = " + "-" * 1000 + "1\n", ["nests more than 200 levels"]),
    ("nested lists", "param a = " + "[" * 1000 + "]" * 1000 + "\n", ["nests more than 200 levels"]),
    ("nested calls", "param a = " + "abs(" * 1000 + "1" + ")" * 1000 + "\n", ["nests more than 200"]),
    ("long sum", "param a = " + "+".join(["1"] * 3000) + "\n", ["nests more than 200", "split"]),
]


@pytest.mark.parametrize("case, body, words", NESTED, ids=[c[0] for c in NESTED])
def test_deep_nesting_is_a_located_error(write_spec, case, body, words):
    path = write_spec(HEADER + body + NET)
    err = located(path, None, 3, archdsl_column(path), words, cls=SpecSyntaxError)
    assert len(err.format().splitlines()[1]) < 140  # a long line is quoted around the caret


def archdsl_column(path):
    try:
        archdsl.load(path)
    except SpecError as err:
        return err.column
    raise AssertionError("no error")


def test_parenthesised_depth_is_fine(write_spec):
    path = write_spec(HEADER + "param a = " + "(" * 1000 + "1" + ")" * 1000 + "\n" + NET)
    assert archdsl.load(path).params["a"] == 1


def test_misplaced_errors_are_located(write_spec, tmp_path):
    path = write_spec(HEADER + "param a = [1, 2, 3][1.5:]\n" + NET)
    located(path, None, 3, 21, ["a slice bound must be an integer, not a number"])
    path = write_spec(HEADER + "param a = int(\"9\" * 5000)\n" + NET, "digits.arch")
    located(path, None, 3, 11, ["int():", "4300 digits"])
    path = write_spec(HEADER + "network:\n    relu\n        relu\n      relu\n", "dedent.arch")
    located(path, None, 5, 9, ["unexpected indentation"], cls=SpecSyntaxError)
    path = write_spec(HEADER + "network:\n    relu\n  relu\n", "dedent2.arch")
    located(path, None, 5, 3, ["matches no enclosing block"], cls=SpecSyntaxError)


def test_text_encoding_problems(tmp_path):
    bad = tmp_path / "latin1.arch"
    bad.write_bytes(HEADER.encode() + "network:\n    relu  # café\n".encode("latin-1"))
    located(str(bad), None, 4, 16, ["not UTF-8 text: byte 0xe9"], cls=SpecSyntaxError)
    bom = tmp_path / "bom.arch"
    bom.write_bytes(b"\xef\xbb\xbf" + (HEADER + NET).encode())
    assert archdsl.load(str(bom)).output_shape == (3, 8, 8)
    assert archdsl.loads("\ufeff" + HEADER + NET).output_shape == (3, 8, 8)
    for char in ("\x0c", "\u2028", "\x1c", "\x85"):
        odd = tmp_path / "odd.arch"
        odd.write_text(HEADER + f"# a comment {char} with an odd character\nnetwork:\n    rleu\n")
        err = located(str(odd), None, 5, 5, ["unknown op or block 'rleu'"])
        assert "    5 |     rleu" in err.format()


# ---- 5. nothing accepted silently ----------------------------------------------------------------------

def test_duplicate_and_undeclared_declarations(write_spec, capsys):
    path = write_spec(HEADER + "param a = 1\nparam a = 2\n" + NET)
    located(path, None, 4, 7, ["parameter 'a' is declared twice (first at", ":3:7)"])
    path = write_spec(HEADER + "param a = 1\nvariant v(a = 2)\nvariant v(a = 3)\n" + NET, "v.arch")
    located(path, None, 5, 9, ["variant 'v' is declared twice"])
    path = write_spec(HEADER + "param a = 1\nvariant good(a = 2)\nvariant bad(b = 2)\n" + NET, "u.arch")
    located(path, None, 5, 13, ["variant bad sets 'b', which is not a parameter"])
    assert main(["check", path, "--variant", "good"]) == 1  # even when another variant is chosen


def test_check_verifies_every_variant(write_spec, capsys):
    path = write_spec(HEADER + "param k = 1\nvariant fine(k = 3)\nvariant broken(k = 9)\n"
                      "network:\n    conv(4, k)\n")
    assert main(["check", path]) == 1
    captured = capsys.readouterr()
    assert captured.out.count(": ok (") == 2  # the defaults and `fine`
    assert "kernel 9" in captured.err
    assert main(["check", path, "--variant", "fine"]) == 0


# ---- 6. errors inside a block name the instance and its call chain ------------------------------------

def test_block_errors_name_the_instance_and_where_it_was_called():
    spec = ROOT / "specs" / "inception_v3.arch"
    with pytest.raises(SpecError) as info:
        archdsl.load("inception_v3", input_shape=(3, 74, 74), aux_logits=False)
    err = info.value
    lines = spec.read_text().splitlines()

    def line_of(text: str) -> int:  # where the spec writes `text` (the spec may gain lines above)
        return next(i for i, line in enumerate(lines, 1) if text in line)

    conv_line = line_of("block basic_conv") + 1
    call = line_of("branch3x3_2: basic_conv")
    mixed = line_of("Mixed_7a: inception_d")
    assert err.span.source.path == str(spec) and err.line == conv_line
    assert err.notes[0] == (f"in Mixed_7a.branch3x3_2 (block basic_conv), called from "
                            f"{spec}:{call}:{lines[call - 1].index('basic_conv(320') + 1}")
    assert err.notes[1] == (f"in Mixed_7a (block inception_d), called from "
                            f"{spec}:{mixed}:{lines[mixed - 1].index('inception_d') + 1}")
    text = err.format()
    assert "kernel 3" in text and "Mixed_7a.branch3x3_2" in text


# ---- 7. weights -----------------------------------------------------------------------------------------

@pytest.fixture
def small():
    return archdsl.loads(HEADER + "network:\n    conv1: conv(4, 3, padding = 1)\n    bn1: batchnorm\n"
                         "    relu\n    adaptive_avgpool(1)\n    flatten\n    fc: linear(2)\n")


def test_nonfinite_and_mistyped_tensors_are_refused(small):
    state = small.to_torch().state_dict()
    for value in (float("nan"), float("inf")):
        broken = dict(state, **{"conv1.weight": state["conv1.weight"].clone().fill_(value)})
        with pytest.raises(WeightsError, match=r"1 tensors hold NaN or Inf values, e.g. conv1.weight "
                                               r"\(108 of 108 values\)"):
            archdsl.build(small, weights=broken)
    for dtype in (torch.int64, torch.bool, torch.float16):
        cast = dict(state, **{"fc.weight": state["fc.weight"].to(dtype)})
        with pytest.raises(WeightsError, match=f"fc.weight is {str(dtype)[6:]}, expected float32"):
            archdsl.build(small, weights=cast)
    from archdsl.backends.weights import load_weights
    half = dict(state, **{"fc.weight": state["fc.weight"].half()})
    load_weights(small.to_torch(), half, cast=True)
    with pytest.raises(WeightsError, match="int64"):
        load_weights(small.to_torch(), dict(state, **{"fc.weight": state["fc.weight"].long()}), cast=True)


def test_build_verifies_a_checkpoints_checksum(tmp_path, small):
    from archdsl.training.checkpoint import save_weights

    state = small.to_torch().state_dict()
    save_weights(tmp_path / "w.safetensors", state, {"spec": "t"})
    archdsl.build(small, weights=tmp_path / "w.safetensors")
    data = bytearray((tmp_path / "w.safetensors").read_bytes())
    data[-4] ^= 0x01  # flip one bit of the last tensor
    (tmp_path / "bad.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupted: its tensors do not match the checksum"):
        archdsl.build(small, weights=tmp_path / "bad.safetensors")


def test_positional_matching_is_reported_and_can_be_refused(small):
    state = small.to_torch().state_dict()
    renamed = {f"layer{i}": v for i, v in enumerate(state.values())}
    with pytest.warns(UserWarning, match=r"matched 9 of 9 tensors by position \(order and shape\)"):
        archdsl.build(small, weights=renamed)
    with pytest.raises(WeightsError, match=r"do not fit this network \(by name\): 9 tensors given, 9 expected"):
        archdsl.build(small, weights=renamed, strict=True)


def test_checkpoints_without_batchnorm_counters_load(small):
    model = small.to_torch()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = archdsl.build(small, weights=state, strict=True)
    assert int(loaded.state_dict()["bn1.num_batches_tracked"]) == 0
    renamed = {f"t{i}": v for i, v in enumerate(state.values())}  # by position, counters absent too
    with pytest.warns(UserWarning, match="matched 8 of 8 tensors by position"):
        archdsl.build(small, weights=renamed)


def test_a_refused_pickle_gives_no_advice_to_unpickle_it(tmp_path, small):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"fc.weight": Evil()}))
    with pytest.raises(WeightsError) as info:
        archdsl.build(small, weights=tmp_path / "evil.pth")
    text = str(info.value)
    assert "holds Python objects other than tensors, which archdsl does not unpickle" in text
    assert "weights_only" not in text and "trust" not in text


# ---- every error run is quick and small -------------------------------------------------------------

def _fuzz_module():
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import fuzz
    return fuzz


def test_error_runs_take_under_2_s_and_1_gb(tmp_path):
    """Every hostile spec above, through `archdsl check` and `archdsl compile` in a child process
    limited to 1 GB of growth: each run exits 1 with an error line in under 2 s of CPU time."""
    fuzz = _fuzz_module()
    bodies = [body if "network:" in body else body + NET for _, body, *_ in BUDGET_CASES]
    bodies += [body + NET for _, body, _ in NESTED]
    runs = []
    for index, body in enumerate(bodies):
        path = tmp_path / f"case{index}.arch"
        path.write_text(HEADER + body)
        runs += [["check", str(path)], ["compile", str(path)]]
    result = fuzz.isolated(fuzz.cli, *runs, timeout=300, memory=1 << 30)
    assert result["status"] == "ok", result
    assert result["peak_bytes"] < 1 << 30, result
    for argv, (rc, seconds, line) in zip(runs, result["detail"]):
        assert rc == 1 and "error: " in line and line.startswith(argv[1]), (argv, line)
        assert seconds < 2.0, (argv, seconds, line)
    print(f"slowest error run: {max(r[1] for r in result['detail']):.2f} s CPU; "
          f"peak growth {result['peak_bytes'] / 2**20:.0f} MB")
