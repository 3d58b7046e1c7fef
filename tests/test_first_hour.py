"""What a new user meets in the first hour: the model contract, the command line's help and errors, reading lines back."""

import argparse
import inspect
import json

import numpy as np
import pytest
import torch

import cs_fast
from cs_fast import smoothing
from cs_fast_apps import cli
from cs_fast.bounds import M_DEFAULT, N_DEFAULT

SMALL = ["--n", "400", "--m", "800", "--alpha1", "0.05", "--alpha2", "0.05", "--delta", "0.2", "--batch-size", "400"]


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ----------------------------------------------------------------------------- the model contract


def test_a_torch_module_gets_torch_tensors_of_its_dtype_from_a_numpy_input():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh()).double()
    seen = []

    def spy(module, args):
        seen.append((type(args[0]), args[0].dtype, tuple(args[0].shape)))

    net.register_forward_pre_hook(spy)
    x = np.array([0.2, -0.1, 0.4])
    cert = cs_fast.CenterSmoothing(net, "l2", 0.1, seed=3, batch_size=250).certify(x, 0.05, n=1000, m=2000)
    assert not cert.abstained and isinstance(cert.center, torch.Tensor) and cert.center.dtype == torch.float64
    assert {s[:2] for s in seen} == {(torch.Tensor, torch.float64)}
    assert {s[2] for s in seen} == {(250, 3), (1, 3)}  # cs_fast adds the batch axis; (1, 3): the clean input
    same = cs_fast.CenterSmoothing(net, "l2", 0.1, seed=3, batch_size=250).certify(torch.from_numpy(x), 0.05,
                                                                                   n=1000, m=2000)
    assert same.to_dict() == cert.to_dict()


def test_a_plain_function_gets_the_type_of_x():
    kinds = set()

    def f(b):
        kinds.add(type(b))
        return b * 2

    cs_fast.CenterSmoothing(f, "l2", 0.1, seed=0).smooth(np.zeros(2), n=800)
    cs_fast.CenterSmoothing(f, "l2", 0.1, seed=0).smooth(torch.zeros(2), n=800)
    assert kinds == {np.ndarray, torch.Tensor}


@pytest.mark.parametrize("x", [np.zeros(0), torch.zeros(0), np.zeros((3, 0))])
def test_an_input_with_no_elements_is_refused(x):
    with pytest.raises(ValueError, match="x: received .* with no elements"):
        cs_fast.CenterSmoothing(lambda b: b, "l2", 0.1).certify(x, 0.1, n=1000, m=1000)


def test_the_docstring_states_the_contract():
    doc = inspect.getdoc(cs_fast.CenterSmoothing)
    for words in ("batch on a new first axis", "batch first", "torch.nn.Module", "always gets torch tensors",
                  "model's own output type"):
        assert words in doc


# ----------------------------------------------------------------------------- defaults and seeds


def test_one_set_of_defaults_for_the_api_and_the_command_line():
    sig = inspect.signature(cs_fast.CenterSmoothing.certify)
    assert (sig.parameters["n"].default, sig.parameters["m"].default) == (N_DEFAULT, M_DEFAULT) == (10_000, 10 ** 6)
    args = cli.build_parser(["certify"]).parse_args(["certify"])
    assert (args.n, args.m, args.alpha1, args.alpha2, args.delta, args.bounds) == (
        N_DEFAULT, M_DEFAULT, smoothing.ALPHA_DEFAULT, smoothing.ALPHA_DEFAULT, smoothing.DELTA_DEFAULT, "exact")


def test_cli_lines_read_back_as_written_and_follow_the_input_seed_rule(tmp_path, capsys):
    from cs_fast.models.toy import blob_detector, blob_images
    from cs_fast.seeds import input_seed

    rc, out, err = _run(capsys, "certify", *SMALL, "--seed", "5", "--eps1", "0.1", "0.2")
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["input"], r["eps1"]) for r in lines] == [(0, 0.1), (0, 0.2)]
    for line in lines:
        cert = cs_fast.Certificate.from_dict(line)  # the line as written, "input" and all
        assert cert.seed == input_seed(5, 0) and line["run_seed"] == 5
        assert cert.to_dict() == {k: v for k, v in line.items() if k not in ("input", "run_seed")}
    again = cs_fast.CenterSmoothing(blob_detector, "jaccard", 0.25, batch_size=400, seed=lines[0]["seed"]).certify(
        blob_images()[0], 0.1, n=400, m=800, alpha1=0.05, alpha2=0.05, delta=0.2)
    assert again.to_dict() == cs_fast.Certificate.from_dict(lines[0]).to_dict()


# ----------------------------------------------------------------------------- the command line


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"cs-fast {cs_fast.__version__}"


def _subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_subcommand_has_a_description_and_every_option_its_default():
    subs = _subparsers()
    assert {"certify", "plan", "demo", "bench", "faces", "perceptual", "audit"} <= set(subs)
    for name, sub in subs.items():
        assert sub.description and len(sub.description) > 40, name
        helptext = sub.format_help()
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
                continue
            formatted = sub.formatter_class(prog="x")._get_help_string(action) % {"default": action.default}
            assert "default" in formatted, (name, action.option_strings)
        assert "default" in helptext


def test_metric_and_cases_options_list_their_values():
    subs = _subparsers()
    certify_help = subs["certify"].format_help().replace("\n", " ")
    for name in cs_fast.available_metrics():
        assert name in certify_help
    from cs_fast_apps.audit import CASE_NAMES

    cases = next(a for a in subs["audit"]._actions if "--cases" in a.option_strings)
    assert tuple(cases.choices) == CASE_NAMES


@pytest.mark.parametrize("content", [b"\x93NUMPY garbage that is not an array", b"not even a header"])
def test_a_damaged_npy_names_inputs_and_gives_no_unpickling_advice(tmp_path, capsys, content):
    path = tmp_path / "x.npy"
    path.write_bytes(content)
    rc, out, err = _run(capsys, "certify", "--model", "cs_fast.models.toy:blob_detector", "--metric", "jaccard",
                        "--sigma", "0.25", "--inputs", str(path), *SMALL)
    assert rc == 2 and "--inputs" in err and "allow_pickle" not in err and "unsafe" not in err


def test_an_npy_of_python_objects_is_refused_without_unpickling(tmp_path, capsys):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    rc, out, err = _run(capsys, "certify", "--model", "cs_fast.models.toy:blob_detector", "--metric", "jaccard",
                        "--sigma", "0.25", "--inputs", str(path), *SMALL)
    assert rc == 2 and "--inputs" in err and "Python objects" in err and "allow_pickle" not in err


def test_inputs_with_no_elements_and_a_missing_output_folder_name_their_flags(tmp_path, capsys):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((2, 0)))
    rc, _, err = _run(capsys, "certify", "--model", "cs_fast.models.toy:blob_detector", "--metric", "jaccard",
                      "--sigma", "0.25", "--inputs", str(path), *SMALL)
    assert rc == 2 and "--inputs" in err and "no elements" in err
    rc, _, err = _run(capsys, "certify", *SMALL, "--output", str(tmp_path / "missing" / "out.jsonl"))
    assert rc == 2 and "--output" in err and "does not exist" in err


def test_extra_install_hints_work_from_a_clone():
    assert cli.extra_hint("distributed", "ray") == "pip install -e '.[distributed]' in the cs_fast clone (or: pip install ray)"
    from cs_fast import distributed

    assert "pip install -e '.[distributed]'" in distributed.RAY_INSTALL
    # cs_fast is installed from its clone: no message may advise installing it from an index
    import pathlib
    import re

    root = pathlib.Path(cli.__file__).parent
    wrong = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"pip install ['\"]?cs_fast\[", line)]
    assert not wrong, wrong


def test_plan_prints_both_rule_sets(capsys):
    rc, out, _ = _run(capsys, "plan", "--h", "2", "--m", "10000")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["exact"], ["paper"])}
    assert rc == 0 and rows["exact"][1:4] == ["784", "passes", "314"] and rows["paper"][1:4] == ["1199", "passes", "9425"]


# ----------------------------------------------------------------------------- compiling


def test_warmup_compiles_and_reports_seconds_per_metric():
    spent = cs_fast.warmup(["l2", "total_variation"], dtypes=["float32"])
    assert sorted(spent) == ["l2", "tv"] and all(s >= 0 for s in spent.values())
    with pytest.raises(ValueError, match="dtypes: received 'float16'"):
        cs_fast.warmup(["l2"], dtypes=["float16"])


def test_the_first_compile_is_announced_by_the_cs_fast_logger(caplog):
    from cs_fast.kernels.cpu import runtime as jit

    with caplog.at_level("WARNING", logger="cs_fast"):
        jit.announce()
    assert [r.getMessage() for r in caplog.records] == [jit.COMPILE_NOTICE]
    assert "cs_fast.warmup()" in jit.COMPILE_NOTICE
