"""``cs-fast certify`` as a newcomer meets it: own model in the working directory, bad inputs, failing
models, missing packages, the help text."""

import argparse
import sys

import numpy as np
import pytest
import torch

from cs_fast_apps import cli

SMALL = ["--n", "200", "--m", "400", "--alpha1", "0.05", "--alpha2", "0.05", "--delta", "0.2", "--batch-size", "200"]

MYMODEL = '''
import torch

def boxes(images):
    return torch.tensor([[1.0, 1.0, 5.0, 5.0]]).repeat(len(images), 1)

def broken(images):
    return helper(images)

def helper(images):
    raise RuntimeError("weights not loaded")
'''


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory holding mymodel.py, and a sys.path without it (as the cs-fast console script has)."""
    (tmp_path / "mymodel.py").write_text(MYMODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    sys.modules.pop("mymodel", None)


def _certify(capsys, *argv):
    rc = cli.main(["certify", *argv])
    out, err = capsys.readouterr()
    err = "\n".join(line for line in err.splitlines() if "compiling the numba kernels" not in line)
    return rc, out, err


def test_model_module_in_the_working_directory_is_found(workdir, capsys):
    np.save(workdir / "x.npy", np.zeros((2, 8, 8), dtype=np.float32))
    rc, out, err = _certify(capsys, "--model", "mymodel:boxes", "--metric", "jaccard", "--sigma", "0.5",
                            "--inputs", "x.npy", *SMALL)
    assert rc == 0, err
    assert len(out.splitlines()) == 2


def test_shape_error_names_the_users_input_and_its_shape(workdir, capsys):
    np.save(workdir / "x.npy", np.zeros(3, dtype=np.float32))  # meant as one input; read as 3 scalars
    rc, out, err = _certify(capsys, "--model", "cs_fast.models.toy:blob_detector", "--metric", "jaccard",
                            "--sigma", "0.5", "--inputs", "x.npy", *SMALL)
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert "--inputs x.npy" in err and "(3,)" in err and "input 0" in err
    assert "cs_fast.models.toy:blob_detector raised ValueError" in err


@pytest.mark.parametrize("shape", [(0,), (0, 16, 16)])
def test_zero_inputs_is_an_error(workdir, capsys, shape):
    np.save(workdir / "x.npy", np.zeros(shape, dtype=np.float32))
    rc, out, err = _certify(capsys, "--model", "mymodel:boxes", "--metric", "jaccard", "--sigma", "0.5",
                            "--inputs", "x.npy")
    assert rc == 2 and out == ""
    assert "--inputs" in err and "0 inputs" in err


def test_zero_dimensional_inputs_is_an_error(workdir, capsys):
    np.save(workdir / "x.npy", np.float32(1.0))
    rc, _, err = _certify(capsys, "--model", "mymodel:boxes", "--metric", "jaccard", "--sigma", "0.5",
                          "--inputs", "x.npy")
    assert rc == 2 and "0-d" in err


def test_exception_in_the_model_says_so_in_one_line(workdir, capsys):
    np.save(workdir / "x.npy", np.zeros((1, 4, 4), dtype=np.float32))
    argv = ["--model", "mymodel:broken", "--metric", "jaccard", "--sigma", "0.5", "--inputs", "x.npy", *SMALL]
    rc, out, err = _certify(capsys, *argv)
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1, err
    assert "the model mymodel:broken raised RuntimeError: weights not loaded" in err
    assert "--traceback" in err and "Traceback" not in err
    rc, _, err = _certify(capsys, *argv, "--traceback")
    assert rc == 2
    assert "Traceback" in err and "in helper" in err and "mymodel.py" in err
    assert err.splitlines()[-1].startswith("cs-fast certify: error: the model mymodel:broken raised")


def test_missing_optional_package_prints_the_install_command(workdir, capsys, monkeypatch):
    # as if scikit-image were not installed (the mtcnn model's default inputs come from its sample photos)
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.delitem(sys.modules, "skimage.data", raising=False)
    rc, out, err = _certify(capsys, "--model", "mtcnn", *SMALL, "--eps1", "0.05")
    assert rc == 2 and out == ""
    assert "pip install scikit-image" in err and len(err.splitlines()) == 1


def test_missing_package_imported_by_the_users_module(workdir, capsys, monkeypatch):
    (workdir / "needs_lpips.py").write_text("import lpips\n\ndef f(x):\n    return x\n")
    monkeypatch.setitem(sys.modules, "lpips", None)
    rc, _, err = _certify(capsys, "--model", "needs_lpips:f", "--metric", "l2", "--sigma", "1", "--inputs", "x.npy")
    sys.modules.pop("needs_lpips", None)
    assert rc == 2 and "pip install --no-deps lpips==0.1.4" in err and "needs_lpips" in err


def _certify_parser():
    parser = cli.build_parser(["certify"])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["certify"]


def test_every_certify_option_has_help_that_shows_its_default():
    p = _certify_parser()
    text = p.format_help()
    options = [a for a in p._actions if a.option_strings and "-h" not in a.option_strings]
    for name in ("--alpha1", "--alpha2", "--delta", "--candidates", "--batch-size", "--seed", "--n", "--m",
                 "--eps1"):
        assert any(name in a.option_strings for a in options), name
    for action in options:
        assert action.help, f"{action.option_strings} has no help text"
        rendered = action.help % {"default": action.default}
        assert "default" in rendered, f"{action.option_strings}: the help does not say its default"
        if action.default not in (None, False):
            shown = action.default[0] if isinstance(action.default, list) else action.default
            assert str(shown) in rendered, f"{action.option_strings}: default {action.default} not shown"
    assert "(default: 0.005)" in " ".join(text.split())


def test_certify_imports_no_optional_subcommand_module():
    import subprocess

    code = ("import sys\nfrom cs_fast_apps import cli\ncli.build_parser(['certify', '--n', '5'])\n"
            "print(sorted(m for m in ('cs_fast_apps.demo', 'cs_fast_apps.bench.command', 'cs_fast_apps.faces', "
            "'cs_fast_apps.perceptual', 'cs_fast.models.faces', 'cs_fast.models.perceptual') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_builtin_model_still_certifies(capsys):
    rc, out, err = _certify(capsys, *SMALL)
    assert rc == 0, err
    assert len(out.splitlines()) == 1


def test_model_wrapper_passes_outputs_through():
    inputs = torch.zeros(2, 3)
    model = cli._UserModel(lambda b: b * 2, "m:f", "--inputs x.npy", inputs)
    assert torch.equal(model(torch.ones(4, 3)), torch.full((4, 3), 2.0))


def test_missing_package_imported_inside_the_model(workdir, capsys, monkeypatch):
    (workdir / "lazy.py").write_text("def f(x):\n    import skimage.filters\n    return x\n")
    np.save(workdir / "x.npy", np.zeros((1, 4), dtype=np.float32))
    monkeypatch.setitem(sys.modules, "skimage", None)
    rc, _, err = _certify(capsys, "--model", "lazy:f", "--metric", "l2", "--sigma", "1", "--inputs", "x.npy", *SMALL)
    sys.modules.pop("lazy", None)
    assert rc == 2 and "the model lazy:f raised" in err and "pip install scikit-image" in err
