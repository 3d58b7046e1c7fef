"""The ``cs-fast`` command: ``certify`` (and ``demo``/``bench`` when their modules are installed).

``cs-fast certify`` with no arguments certifies the built-in toy blob
detector on its built-in image; ``--model module:callable --inputs x.npy``
certifies your own model. One JSON line per input and eps1.
"""

import argparse
import importlib
import json
import sys

import numpy as np

BUILTIN_MODELS = {
    # name: (module:callable, default metric, default sigma, module:callable of the default inputs)
    "toy-blob": ("cs_fast.models.toy:blob_detector", "jaccard", 0.25, "cs_fast.models.toy:blob_images"),
    # facenet-pytorch's MTCNN (pip install --no-deps facenet-pytorch==2.6.0), top face box
    "mtcnn": ("cs_fast.models.faces:top_face_boxes", "jaccard", 0.1, "cs_fast.models.faces:astronaut_batch"),
}


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _load_callable(spec):
    if spec in BUILTIN_MODELS:
        spec = BUILTIN_MODELS[spec][0]
    if ":" not in spec:
        raise CliError(f"--model: received {spec!r}; expected module:callable or one of {sorted(BUILTIN_MODELS)}")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise CliError(f"--model: cannot import module {module_name!r} ({err})") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise CliError(f"--model: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise CliError(f"--model: {spec!r} is not callable")
    return obj


def _load_inputs(path, model):
    """A batch of inputs (first axis = inputs) from .npy or .pt, or the built-in model's when None."""
    import torch

    if path is None:
        if model not in BUILTIN_MODELS:
            raise CliError("--inputs: required for a model that is not built in")
        return _load_callable(BUILTIN_MODELS[model][3])()
    if path.endswith(".npy"):
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as err:
            raise CliError(f"--inputs: cannot read {path!r} as .npy ({err})") from None
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
                   help="module:callable mapping a batch of inputs to a batch of outputs, or a built-in "
                        f"model ({', '.join(BUILTIN_MODELS)}; default toy-blob)")
    p.add_argument("--inputs", help="inputs to certify, .npy or .pt, first axis = inputs (default: the built-in "
                                    "model's: the toy image, the astronaut photo's face crop)")
    p.add_argument("--metric", help="output metric (default: the built-in model's, else required)")
    p.add_argument("--channel-norm", type=int, choices=(1, 2), help="tv: channel norm")
    p.add_argument("--weights", help="sqfeat: .npy file of feature weights")
    p.add_argument("--sigma", type=float, help="smoothing noise (default: the built-in model's)")
    p.add_argument("--eps1", type=float, nargs="+", default=[0.25], help="input radii to certify")
    p.add_argument("--n", type=int, default=10_000, help="samples to pick and check the center")
    p.add_argument("--m", type=int, default=100_000, help="samples to certify (the paper uses 10^6)")
    p.add_argument("--alpha1", type=float, default=0.005)
    p.add_argument("--alpha2", type=float, default=0.005)
    p.add_argument("--delta", type=float, default=0.05)
    p.add_argument("--candidates", type=int, help="Smooth-HD: number of candidate centers")
    p.add_argument("--allow-weak-candidates", action="store_true",
                   help="accept a --candidates k with 2^-k > alpha1 + alpha2 (refused otherwise)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=None,
                   help="noise seed (default: fresh OS entropy per certificate, recorded in its 'seed' field; "
                        "pass that value back to reproduce it)")
    p.add_argument("--progress", action="store_true", help="show progress bars on stderr")
    p.add_argument("--output", help="write JSON lines here instead of stdout")


def main_certify(args):
    from . import CenterSmoothing

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
        from .smoothing import check_candidates

        try:
            check_candidates(args.candidates, args.alpha1 + args.alpha2)
        except ValueError as err:
            raise CliError(f"--{err} (flag --allow-weak-candidates)") from None
    inputs = _load_inputs(args.inputs, args.model)
    smoother = CenterSmoothing(model, metric, sigma, metric_params=params, batch_size=args.batch_size,
                               seed=args.seed, progress=args.progress, candidates=args.candidates,
                               allow_weak_candidates=args.allow_weak_candidates)
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        for i in range(len(inputs)):
            for eps1 in args.eps1:
                cert = smoother.certify(inputs[i], eps1, n=args.n, m=args.m, alpha1=args.alpha1,
                                        alpha2=args.alpha2, delta=args.delta)
                # Certificate.from_dict(record without "input") restores the certificate.
                out.write(json.dumps({"input": i, **cert.to_dict()}) + "\n")
                out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _optional(module, adder, runner):
    """Wire a subcommand whose module needs optional packages.

    When those are missing the subcommand still exists and says what to
    install, instead of the whole command failing to start.
    """
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        def missing(args, _err=err):
            raise CliError(f"needs {_err.name or 'an optional package'}, which is not installed "
                           "(pip install 'cs_fast[demo]')")
        return (lambda parser: None), missing
    return getattr(mod, adder), getattr(mod, runner)


def build_parser():
    parser = argparse.ArgumentParser(prog="cs-fast", description="Fast, certified center smoothing.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("certify", help="certify a model's outputs (default: the built-in toy detector)")
    add_certify_arguments(p)
    p.set_defaults(run=main_certify)
    for name, module, adder, runner, text in [
        ("demo", "cs_fast.demo", "add_demo_arguments", "main_demo", "certify the digits autoencoder (paper Fig. 5)"),
        ("bench", "cs_fast.bench.command", "add_bench_arguments", "main_bench", "benchmark against scipy, torch, ..."),
        ("faces", "cs_fast.models.faces", "add_faces_arguments", "main_faces",
         "certify MTCNN's face box on the astronaut photo (paper section 5.1)"),
        ("perceptual", "cs_fast.models.perceptual", "add_perceptual_arguments", "main_perceptual",
         "certify the digits generator in LPIPS, exact center vs 30 candidates (paper section 5.2)"),
        ("audit", "cs_fast.audit", "add_audit_arguments", "main_audit",
         "test certificates against perturbations and attacks: violation counts and coverage, with positive controls"),
    ]:
        add_arguments, run = _optional(module, adder, runner)
        p = sub.add_parser(name, help=text)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
        return status if isinstance(status, int) else 0  # subcommands may return their results
    except (CliError, ValueError, TypeError, RuntimeError, OSError, ImportError) as err:
        # ImportError: an optional model package (facenet-pytorch, lpips) is missing; its message says
        # what to install.
        print(f"cs-fast {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
