"""The ``cs-fast`` command: ``certify`` (and ``demo``/``bench`` when their modules are installed).

``cs-fast certify`` with no arguments certifies the built-in toy blob
detector on its built-in image; ``--model module:callable --inputs x.npy``
certifies your own model. One JSON line per input and eps1.
"""

import argparse
import importlib
import json
import os
import sys
import traceback

import numpy as np

BUILTIN_MODELS = {
    # name: (module:callable, default metric, default sigma, module:callable of the default inputs)
    "toy-blob": ("cs_fast.models.toy:blob_detector", "jaccard", 0.25, "cs_fast.models.toy:blob_images"),
    # facenet-pytorch's MTCNN (pip install --no-deps facenet-pytorch==2.6.0), top face box
    "mtcnn": ("cs_fast.models.faces:top_face_boxes", "jaccard", 0.1, "cs_fast.models.faces:astronaut_batch"),
}


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


class ModelError(CliError):
    """The user's model raised: printed as one line that says so (``--traceback`` shows where)."""


#: The install command for each optional package a command or model may import (by import name).
INSTALL = {
    "skimage": "pip install scikit-image",
    "sklearn": "pip install scikit-learn",
    "matplotlib": "pip install matplotlib",
    "PIL": "pip install pillow",
    "requests": "pip install requests",
    "facenet_pytorch": "pip install --no-deps facenet-pytorch==2.6.0",
    "lpips": "pip install --no-deps lpips==0.1.4",
    "torch": "pip install 'torch==2.13.0'",
    "torchvision": "pip install torchvision",
    "numba_cuda": "pip install numba-cuda",
    "cupy": "pip install cupy-cuda12x",
    "pytest_benchmark": "pip install pytest-benchmark",
}


def install_hint(err):
    """``err``'s message, plus the pip command that installs the missing package when we know it."""
    name = (getattr(err, "name", None) or "").split(".")[0]
    if name == "numba" and "cuda" in (getattr(err, "name", "") or ""):
        name = "numba_cuda"
    if name in INSTALL and INSTALL[name] not in str(err):
        return f"{err}; install it with: {INSTALL[name]}"
    return str(err)


def _load_callable(spec):
    if spec in BUILTIN_MODELS:
        spec = BUILTIN_MODELS[spec][0]
    if ":" not in spec:
        raise CliError(f"--model: received {spec!r}; expected module:callable or one of {sorted(BUILTIN_MODELS)}")
    module_name, _, attr = spec.partition(":")
    # As `python -m` does: a module in the working directory is importable.
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        if getattr(err, "name", None) not in (None, module_name) and not module_name.startswith(err.name + "."):
            # The module exists but imports a package that is missing.
            raise CliError(f"--model: module {module_name!r} needs {err.name!r}: {install_hint(err)}") from None
        raise CliError(f"--model: cannot import module {module_name!r} ({err}; looked in the working directory "
                       "and on the Python path)") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise CliError(f"--model: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise CliError(f"--model: {spec!r} is not callable")
    return obj


def _load_inputs(path, model):
    """A batch of inputs (first axis = inputs) from .npy or .pt, or the built-in model's when None."""
    if path is None:
        if model not in BUILTIN_MODELS:
            raise CliError("--inputs: required for a model that is not built in")
        try:
            return _load_callable(BUILTIN_MODELS[model][3])()
        except ImportError as err:
            raise CliError(f"--model {model}: its default inputs need {err.name!r}: {install_hint(err)}") from None
    data = _read_inputs(path)
    if data.ndim == 0:
        raise CliError(f"--inputs: {path!r} holds a 0-d array; expected a batch, the inputs along the first axis "
                       "(save one input x as x[None])")
    if len(data) == 0:
        raise CliError(f"--inputs: {path!r} holds 0 inputs (shape {tuple(data.shape)}); expected at least one")
    if 0 in tuple(data.shape[1:]):
        raise CliError(f"--inputs: {path!r} has shape {tuple(data.shape)}: each input has no elements; expected "
                       "inputs with at least one element along the first axis")
    return data


def _read_inputs(path):
    import torch

    if path.endswith(".npy"):
        if not os.path.isfile(path):
            raise CliError(f"--inputs: {path!r} does not exist; expected a .npy or .pt file of inputs")
        try:
            data = np.load(path, allow_pickle=False)  # never unpickle: a .npy of numbers only
        except (OSError, ValueError, EOFError):
            raise CliError(f"--inputs: {path!r} is not a readable .npy file of numbers (it is damaged, or holds "
                           "Python objects, which cs-fast does not load); expected numpy.save(path, array) of a "
                           "numeric array, inputs along the first axis") from None
        if data.dtype.kind not in "fiub":
            raise CliError(f"--inputs: {path!r} holds dtype {data.dtype}; expected a numeric array")
        return torch.from_numpy(data)
    if path.endswith(".pt"):
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch.load raises many kinds
            raise CliError(f"--inputs: cannot read {path!r} as .pt ({err})") from None
        if not isinstance(data, torch.Tensor):
            raise CliError(f"--inputs: {path!r} holds a {type(data).__name__}; expected one tensor")
        return data
    raise CliError(f"--inputs: received {path!r}; expected a .npy or .pt file")


def add_certify_arguments(p):
    p.add_argument("--model", default="toy-blob",
                   help="module:callable mapping a batch of inputs to a batch of outputs (a module in the "
                        f"working directory is found), or a built-in model: {', '.join(BUILTIN_MODELS)} "
                        "(default: %(default)s)")
    p.add_argument("--inputs", help="inputs to certify, .npy or .pt, first axis = inputs (default: the built-in "
                                    "model's: the toy image, the astronaut photo's face crop)")
    from cs_fast.metrics import available_metrics

    p.add_argument("--metric", help=f"output metric, one of {', '.join(available_metrics())} (default: the "
                                    "built-in model's, else required)")
    p.add_argument("--channel-norm", type=int, choices=(1, 2),
                   help="tv: norm over channels of each neighbour difference (default: 1)")
    p.add_argument("--weights", help="sqfeat: .npy file of feature weights (default: all 1)")
    p.add_argument("--sigma", type=float, help="smoothing noise (default: the built-in model's, else required)")
    p.add_argument("--eps1", type=float, nargs="+", default=[0.25],
                   help="input l2 radii to certify, one JSON line each (default: 0.25)")
    from cs_fast.bounds import ALPHA_DEFAULT, DELTA_DEFAULT, M_DEFAULT, N_DEFAULT

    p.add_argument("--n", type=int, default=N_DEFAULT,
                   help="samples to pick the center, and as many again to check it (default: %(default)s, the "
                        "paper's; cs-fast plan shows the least that can pass)")
    p.add_argument("--m", type=int, default=M_DEFAULT,
                   help="samples to certify the radius (default: %(default)s, the paper's; with the exact bounds "
                        "far fewer often suffice: cs-fast plan)")
    p.add_argument("--alpha1", type=float, default=ALPHA_DEFAULT,
                   help="failure probability of the center check (default: %(default)s)")
    p.add_argument("--alpha2", type=float, default=ALPHA_DEFAULT,
                   help="failure probability of the radius bound (default: %(default)s)")
    p.add_argument("--delta", type=float, default=DELTA_DEFAULT,
                   help="abstain unless the center check's margin is at most this (default: %(default)s)")
    from .sweep import add_bounds_argument

    add_bounds_argument(p)
    p.add_argument("--candidates", type=int,
                   help="Smooth-HD: pick the center among this many samples instead of all n "
                        "(default: the exact center)")
    p.add_argument("--allow-weak-candidates", action="store_true",
                   help="accept a --candidates k with 2^-k > alpha1 + alpha2 (default: refused)")
    p.add_argument("--batch-size", type=int, default=1000,
                   help="noisy inputs per model call (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None,
                   help="the run's seed S, recorded in every line as 'run_seed': input i draws its noise from a seed "
                        "derived from (S, i), the line's 'seed', the same in this process and on Ray workers "
                        "(default: fresh OS entropy; --seed <run_seed> reproduces a run, "
                        "CenterSmoothing(..., seed=<seed>) one line)")
    p.add_argument("--progress", action="store_true", help="show progress on stderr (default: off)")
    p.add_argument("--output", help="write JSON lines here (default: stdout)")
    p.add_argument("--traceback", action="store_true",
                   help="on an error, print the full traceback (default: one line)")
    d = p.add_argument_group(f"certify a dataset on Ray workers ({extra_hint('distributed', 'ray')})")
    d.add_argument("--workers", type=int,
                   help="certify the inputs on this many Ray workers, each loading the model once "
                        "(default: in this process; with --address or --resume: one per GPU, else per core)")
    d.add_argument("--address", help="join this Ray cluster ('auto' or ray://host:port; default: start a local Ray)")
    d.add_argument("--resume", action="store_true",
                   help="keep the records of --output whose input and parameters match, certify the rest "
                        "(default: start over)")


class _UserModel:
    """The user's callable; an exception inside it becomes a :class:`ModelError` naming it and the input."""

    def __init__(self, fn, spec, source, inputs):
        self.fn, self.spec, self.source, self.inputs = fn, spec, source, inputs
        self.index = 0

    def __call__(self, batch):
        try:
            return self.fn(batch)
        except Exception as err:
            shape = tuple(self.inputs[self.index].shape)
            detail = install_hint(err) if isinstance(err, ImportError) else str(err)
            raise ModelError(
                f"the model {self.spec} raised {type(err).__name__}: {detail} (it was called on a batch of shape "
                f"{tuple(batch.shape)}: noisy copies of input {self.index} of {self.source}, shape {shape}, "
                f"all inputs {tuple(self.inputs.shape)} with the first axis indexing them)"
            ) from err


def main_certify(args):
    from cs_fast import CenterSmoothing

    model = _load_callable(args.model)
    builtin = BUILTIN_MODELS.get(args.model)
    metric = args.metric or (builtin[1] if builtin else None)
    sigma = args.sigma if args.sigma is not None else (builtin[2] if builtin else None)
    if metric is None:
        raise CliError("--metric: required for a model that is not built in")
    if sigma is None:
        raise CliError("--sigma: required for a model that is not built in")
    params = {}
    if args.channel_norm is not None:
        params["channel_norm"] = args.channel_norm
    if args.weights is not None:
        params["weights"] = np.load(args.weights, allow_pickle=False)
    if not args.allow_weak_candidates:
        from cs_fast.smoothing import check_candidates

        try:
            check_candidates(args.candidates, args.alpha1 + args.alpha2)
        except ValueError as err:
            raise CliError(f"--{err} (flag --allow-weak-candidates)") from None
    from cs_fast.bounds import require_certifiable

    if args.output is not None:
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder):
            raise CliError(f"--output: the folder {folder!r} of {args.output!r} does not exist; create it first")
    for eps1 in args.eps1:  # before loading anything: an n or m that can never certify is an error now
        try:
            require_certifiable(args.n, args.m, eps1, sigma, args.delta, args.alpha1, args.alpha2, args.bounds)
        except ValueError as err:
            raise CliError(f"--{err} (at --eps1 {eps1:g}, --sigma {sigma:g})") from None
    inputs = _load_inputs(args.inputs, args.model)
    if args.workers is not None or args.address is not None or args.resume:
        return _certify_on_workers(args, metric, sigma, params, inputs)
    from cs_fast.seeds import input_seed, root_seed

    model = _UserModel(model, args.model, f"--inputs {args.inputs}" if args.inputs else "the built-in inputs", inputs)
    run_seed = root_seed(args.seed)  # input i draws from input_seed(run_seed, i), as on Ray workers
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        for i in range(len(inputs)):
            model.index = i
            smoother = CenterSmoothing(model, metric, sigma, metric_params=params, batch_size=args.batch_size,
                                       seed=input_seed(run_seed, i), progress=args.progress,
                                       candidates=args.candidates, allow_weak_candidates=args.allow_weak_candidates,
                                       bounds=args.bounds)
            for eps1 in args.eps1:
                cert = smoother.certify(inputs[i], eps1, n=args.n, m=args.m, alpha1=args.alpha1,
                                        alpha2=args.alpha2, delta=args.delta)
                # Certificate.from_dict(record without "input") restores the certificate.
                out.write(json.dumps({"input": i, "run_seed": run_seed, **cert.to_dict()}) + "\n")
                out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _certify_on_workers(args, metric, sigma, params, inputs):
    """``cs-fast certify --workers N``: :func:`cs_fast.distributed.certify_many`, records as they complete.

    Each line is the certificate's ``to_dict()`` plus ``input``, ``digest`` and
    ``status`` (``"error"`` lines carry ``error`` and ``source`` instead).
    Exit status 1 when some input ended in an error record.
    """
    import time

    from cs_fast import distributed

    from cs_fast.seeds import root_seed

    if args.resume and args.output is None:
        raise CliError("--resume: requires --output, the results file to resume")
    run_seed = root_seed(args.seed)  # drawn here, so that every line can record it
    spec = BUILTIN_MODELS[args.model][0] if args.model in BUILTIN_MODELS else args.model
    factory = distributed.ImportedCallable(spec)  # the worker imports the model itself
    start = time.perf_counter()
    results = []
    stream = None if args.output else sys.stdout
    run = distributed.certify_many(
        factory, inputs, metric=metric, sigma=sigma, eps1=args.eps1, n=args.n, m=args.m, alpha1=args.alpha1,
        alpha2=args.alpha2, delta=args.delta, candidates=args.candidates, metric_params=params,
        batch_size=args.batch_size, seed=run_seed, workers=args.workers, address=args.address,
        output=args.output, resume=args.resume, progress=args.progress,
        smoother_options={"allow_weak_candidates": args.allow_weak_candidates}, bounds=args.bounds)
    for index, result in run:
        results.append((index, result))
        if stream is not None:
            stream.write(json.dumps({"input": index, "run_seed": run_seed, **result.to_dict()}) + "\n")
            stream.flush()
    print(f"cs-fast certify: {distributed.summary_line(results, time.perf_counter() - start)}", file=sys.stderr)
    return 1 if any(isinstance(r, distributed.FailedInput) for _, r in results) else 0


def add_plan_arguments(p):
    """``cs-fast plan``'s options."""
    from cs_fast.bounds import ALPHA_DEFAULT, DELTA_DEFAULT, M_DEFAULT, N_DEFAULT

    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--h", type=float, help="eps1 / sigma, the input radius in units of the noise")
    what.add_argument("--eps1", type=float, help="the input l2 radius (with --sigma)")
    p.add_argument("--sigma", type=float, help="the smoothing noise (with --eps1)")
    p.add_argument("--delta", type=float, default=DELTA_DEFAULT, help="the center check's margin (default: %(default)s)")
    p.add_argument("--alpha1", type=float, default=ALPHA_DEFAULT,
                   help="failure probability of the center (default: %(default)s)")
    p.add_argument("--alpha2", type=float, default=ALPHA_DEFAULT,
                   help="failure probability of the radius (default: %(default)s)")
    p.add_argument("--n", type=int, default=N_DEFAULT, help="center samples to evaluate (default: %(default)s)")
    p.add_argument("--m", type=int, default=M_DEFAULT,
                   help="certification samples to evaluate (default: %(default)s)")


def main_plan(args):
    """Print :func:`cs_fast.bounds.plan`'s table."""
    from cs_fast.bounds import plan

    if args.eps1 is not None and args.sigma is None:
        raise CliError("--sigma: required with --eps1 (or give --h = eps1/sigma)")
    if args.h is not None and args.sigma is not None:
        raise CliError("--sigma: goes with --eps1, not with --h")
    print(plan(args.h, eps1=args.eps1, sigma=args.sigma, delta=args.delta, alpha1=args.alpha1, alpha2=args.alpha2,
               n=args.n, m=args.m))
    return 0


#: Subcommands whose modules need optional packages: name, module, argument adder, runner, help, description.
SUBCOMMANDS = [
    ("demo", "cs_fast_apps.demo", "add_demo_arguments", "main_demo", "certify the digits autoencoder (paper Fig. 5)",
     "Certify the total variation of the smoothed digits autoencoder (shipped, trained on scikit-learn's digits) "
     "for held-out digits at eps1 = 0.2 ... 1.0 and sigma = eps1 / h, under both rule sets from the same samples; "
     "prints the table and writes results.json, table.txt, curves.png and outputs.png into a fresh folder."),
    ("bench", "cs_fast_apps.bench.command", "add_bench_arguments", "main_bench", "benchmark against scipy, torch, ...",
     "Time cs_fast's distances and centers against scipy, torch, scikit-learn and the authors' row-by-row "
     "method in the same run; report ratios, memory and the machine's load."),
    ("faces", "cs_fast_apps.faces", "add_faces_arguments", "main_faces",
     "certify MTCNN's face box on the astronaut photo (paper section 5.1)",
     "Certify the Jaccard distance of MTCNN's top face box (facenet-pytorch's bundled weights) on a sample photo "
     "for every (h, eps1): JSON lines, certificates.json and one picture per setting."),
    ("perceptual", "cs_fast_apps.perceptual", "add_perceptual_arguments", "main_perceptual",
     "certify the digits generator in LPIPS, exact center vs 30 candidates (paper section 5.2)",
     "Time the exact center against Smooth-HD's 30 candidates, then certify the LPIPS distance of the digits "
     "generator for every (h, eps1)."),
    ("audit", "cs_fast_apps.audit", "add_audit_arguments", "main_audit",
     "test certificates against perturbations and attacks: violation counts and coverage, with positive controls",
     "Certify, then perturb the input within eps1 (random, toward a threshold, PGD) and smooth again: counts "
     "violations and the coverage of the certified balls against the claimed failure probability, with "
     "positive controls that must be caught."),
]


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already states one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" not in text and action.default is not None and action.default is not False
                and action.default != argparse.SUPPRESS and action.option_strings and action.nargs != 0):
            text += " (default: %(default)s)"
        return text


def extra_hint(extra, package=None):
    """How to install one of cs_fast's extras from a clone (cs_fast is installed from its source)."""
    alt = f" (or: pip install {package})" if package else ""
    return f"pip install -e '.[{extra}]' in the cs_fast clone{alt}"


def _optional(module, adder, runner):
    """Wire a subcommand whose module needs optional packages.

    When those are missing the subcommand still exists and says what to
    install, instead of the whole command failing to start.
    """
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        def missing(args, _err=err):
            raise CliError(f"needs {_err.name or 'an optional package'}, which is not installed: "
                           f"{install_hint(_err)}")
        return (lambda parser: None), missing
    return getattr(mod, adder), getattr(mod, runner)


def build_parser(argv=None):
    """The ``cs-fast`` parser; given the command line ``argv``, only the subcommand it names is complete.

    The optional subcommands' modules import torch models, matplotlib, ...
    (seconds): :func:`main` passes its ``argv`` so that ``cs-fast certify``
    and ``cs-fast --help`` do not pay for them. Without ``argv`` every
    subcommand gets its arguments (for introspection).
    """
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    from cs_fast import __version__

    parser = argparse.ArgumentParser(prog="cs-fast", description="Fast, certified center smoothing: certify the "
                                     "outputs of a model (boxes, images, feature vectors) against input "
                                     "perturbations, and fast pairwise distances.", formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cs-fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("certify", help="certify a model's outputs (default: the built-in toy detector)",
                       formatter_class=DefaultsHelpFormatter,
                       description="Certify a model's outputs with center smoothing: one JSON line per input "
                                   "and eps1, a certificate each (cs_fast.Certificate.from_dict reads a line "
                                   "back; the fields are described in the documentation's certificate page).")
    add_certify_arguments(p)
    p.set_defaults(run=main_certify)
    p = sub.add_parser("plan", help="how many samples a certificate needs, before any model call",
                       formatter_class=DefaultsHelpFormatter,
                       description="For an input radius in units of the noise (h = eps1/sigma), under the exact "
                                   "and the paper's bounds: the smallest n whose center check can pass, the "
                                   "smallest m that can certify, the rank and level m reaches, and the m that "
                                   "reaches the level the paper's bounds reach at m.")
    add_plan_arguments(p)
    p.set_defaults(run=main_plan)
    for name, module, adder, runner, text, description in SUBCOMMANDS:
        p = sub.add_parser(name, help=text, description=description, formatter_class=DefaultsHelpFormatter)
        if chosen is None or name == chosen:
            add_arguments, run = _optional(module, adder, runner)
            add_arguments(p)
            p.set_defaults(run=run)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    # the first compile is announced by the cs_fast logger (cs_fast.kernels.cpu.runtime): one line on stderr
    try:
        status = args.run(args)
        return status if isinstance(status, int) else 0  # subcommands may return their results
    except (CliError, ValueError, TypeError, RuntimeError, OSError, ImportError) as err:
        if getattr(args, "traceback", False):
            traceback.print_exception(err.__cause__ if isinstance(err, ModelError) else err, file=sys.stderr)
        # ImportError: an optional package (scikit-image, facenet-pytorch, lpips) is missing: say what to install.
        message = install_hint(err) if isinstance(err, ImportError) else str(err)
        if isinstance(err, ModelError) and not getattr(args, "traceback", False):
            message += " [--traceback shows where]"
        print(f"cs-fast {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the output went to a pipe that closed early (| head): not an error
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
