r"""The samples of center smoothing: noisy copies of one input through the model, checked.

:class:`Sampler` owns what the statistics of :mod:`cs_fast.smoothing` do not
depend on: the seed streams, the batches, the model calls and the checks of
the input and of the outputs. A call draws from one :class:`Draw`, whose first
model output decides where the call computes
(:func:`cs_fast.bindings.backend.resolve`): on the host, or on the device for
device outputs, where they stay (only counts and scalars come back).

Noise: sample ``j`` of a stream is :math:`x + \sigma \epsilon_j`,
:math:`\epsilon_j \sim N(0, I)`, drawn batch by batch from the stream's
generator (numpy's ``default_rng`` for numpy inputs, a seeded
``torch.Generator`` on the input's device for torch inputs). The streams of a
call are four independent children of its root :class:`numpy.random.SeedSequence`:
the center sample, the mass check, the certification and the Smooth-HD
candidates. A range of batches draws (and drops) the noise of the batches
before it, so that it sees exactly the noise of the full run.
"""

import contextlib
import itertools
import sys

import numpy as np

from ._checks import check_finite, check_int, check_positive, describe, nonfinite_rows_error
from .bindings.backend import resolve
from .bindings.arrays import check_backend, is_torch
from .bindings.distance import to_center64


def module_input(model):
    """(device, dtype) of a torch module's first parameter or buffer (None: not a module)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        return None
    for tensor in list(model.parameters())[:1] + list(model.buffers())[:1]:
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


class Sampler:
    """Seed streams, batches, model calls and their checks, for one model and one noise level.

    Parameters
    ----------
    model : callable
        The base model, called on batches ``x[None] + sigma * noise`` of at
        most ``batch_size`` noisy copies; it returns one output per copy,
        batch first: shape ``(b, ...)`` for ``b`` copies. What goes in and
        what may come out is the model contract of
        :class:`cs_fast.CenterSmoothing`, stated there once.
    metric, metric_params : Metric, dict
        The output distance, for the distances of fresh samples to a center.
    sigma : float
        The noise's standard deviation.
    batch_size : int
        Copies per model call.
    backend : {'auto', 'cpu', 'cuda'}
        Where a call computes (:func:`cs_fast.bindings.backend.resolve`).
    seed : int, numpy.random.SeedSequence or None
        The noise's root; None draws fresh OS entropy for every call.
    progress : bool
        A progress bar over batches.
    """

    def __init__(self, model, metric, sigma, *, metric_params, batch_size, backend, seed, progress):
        self.model = model
        self.metric = metric
        self.metric_params = metric_params
        self.sigma = check_positive(sigma, "sigma")
        self.batch_size = check_int(batch_size, "batch_size")
        self.backend = check_backend(backend)
        if isinstance(seed, np.random.SeedSequence):
            if seed.pool_size != np.random.SeedSequence(0).pool_size:
                raise ValueError(f"seed: received a SeedSequence with pool_size {seed.pool_size}; expected the "
                                 "default pool size (it is not recorded in the results)")
        elif seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        self.progress = bool(progress)
        self.module_input = module_input(model)

    def root(self):
        """This call's root SeedSequence: fresh OS entropy when ``seed`` is None.

        A given SeedSequence is copied (its entropy and spawn key), so that
        every call spawns the same streams from it and the recorded seed
        reproduces the call.
        """
        if self.seed is None:
            return np.random.SeedSequence()
        if isinstance(self.seed, np.random.SeedSequence):
            return np.random.SeedSequence(self.seed.entropy, spawn_key=self.seed.spawn_key)
        return np.random.SeedSequence(self.seed)

    @staticmethod
    def streams(root):
        """Independent seed streams: center sample, mass check, certification, candidates."""
        return root.spawn(4)

    def check_input(self, x):
        """``x`` as the model takes it (a torch tensor for a module), refused when empty, not float or not finite."""
        if self.module_input is not None and isinstance(x, np.ndarray) and x.dtype.kind == "f":
            import torch

            device, dtype = self.module_input
            x = torch.as_tensor(x, device=device).to(dtype)  # the model contract: a module gets torch tensors
        if getattr(x, "ndim", 1) and getattr(x, "shape", (1,)) and 0 in tuple(x.shape):
            raise ValueError(f"x: received {describe(x)} with no elements; expected one input with at least one "
                             "element (cs_fast adds the batch axis itself)")
        if is_torch(x):
            if not x.is_floating_point():
                raise TypeError(f"x: received {describe(x)}; expected a floating-point tensor")
            bad = int((~x.isfinite()).sum())
        else:
            if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
                raise TypeError(f"x: received {describe(x)}; expected a floating-point numpy array or torch tensor")
            bad = int((~np.isfinite(x)).sum())
        if bad:
            raise ValueError(f"x: received {bad} NaN or inf entries; expected a finite input")
        return x

    def batch_range(self, count, first=0, stop=None):
        """(batches, samples) of batches ``[first, stop)`` of ``count`` samples."""
        batches = -(-count // self.batch_size)
        stop = batches if stop is None else min(int(stop), batches)
        first = min(int(first), stop)
        return stop - first, max(0, min(stop * self.batch_size, count) - first * self.batch_size)

    def draw(self, x):
        """A :class:`Draw` of the checked input ``x``, with this call's root and streams."""
        return Draw(self, self.check_input(x))


class Draw:
    """One call's samples of one input ``x``.

    Attributes
    ----------
    x : array or tensor
        The checked input.
    root : numpy.random.SeedSequence
        The call's root (fresh OS entropy when the sampler's seed is None).
    streams : list of numpy.random.SeedSequence
        :meth:`Sampler.streams` of ``root``.
    where : Host, Device or None
        Where the call computes, decided by its first model output (None
        before it); ``where.home`` holds the samples.
    """

    def __init__(self, sampler, x):
        self.sampler = sampler
        self.x = x
        self.root = sampler.root()
        self.streams = sampler.streams(self.root)
        self.where = None

    def seed_record(self):
        """``{"seed", "spawn_key"}`` of the root, as a result records them (passing them back reproduces the call)."""
        root = self.root
        entropy = root.entropy if isinstance(root.entropy, int) else tuple(int(e) for e in root.entropy)
        return dict(seed=entropy, spawn_key=tuple(int(k) for k in root.spawn_key))

    def scope(self):
        """The outputs' device, stream and pool for device work on them (nothing on the host)."""
        return self.where.scope() if self.where is not None else contextlib.nullcontext()

    def batches(self, count, stream, desc, first=0, stop=None, checks=None):
        """Yield model outputs for ``count`` noisy copies of ``x``, in batches.

        Only batches ``first <= i < stop`` reach the model; the noise of the
        batches before ``first`` is drawn and dropped, so a range of batches
        sees exactly the noise it sees in the full run (split certification).
        ``checks`` (a :class:`cs_fast.bindings.device.DeferredChecks`): device
        outputs are checked on the device into slot ``i - first`` and read
        back once by the caller, instead of once per batch.
        """
        from .progress import progress

        s, x = self.sampler, self.x
        if is_torch(x):
            import torch

            gen = torch.Generator(device=x.device)
            gen.manual_seed(int(stream.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))
        else:
            rng = np.random.default_rng(stream)
        bar = progress(count, desc, "sample", s.progress, leave=False)
        done = 0
        index = 0
        try:
            while done < count and (stop is None or index < stop):
                b = min(s.batch_size, count - done)
                if is_torch(x):
                    noise = torch.randn((b,) + tuple(x.shape), generator=gen, device=x.device, dtype=x.dtype)
                    if index >= first:
                        with torch.no_grad():
                            out = s.model(x.unsqueeze(0) + s.sigma * noise)
                else:
                    noise = rng.standard_normal((b,) + x.shape).astype(x.dtype, copy=False)
                    if index >= first:
                        out = s.model(x[None] + s.sigma * noise)
                if index >= first:
                    yield self.check_output(out, b, checks, index - first)
                    bar.update(b)
                done += b
                index += 1
        finally:
            bar.close()

    def check_output(self, out, b, checks=None, slot=0):
        """The model output ``out`` of a batch of ``b``, viewed where the call computes, and checked.

        Device outputs stay on the device (unless ``backend='cpu'``, whose
        host view refuses them) and are checked there, with only the NaN/inf
        row count coming back (with ``checks``: recorded on the device, read
        back once for all batches).
        """
        if self.where is None:
            self.where = resolve(self.sampler.backend, out, names=["model output"])
        home = self.where.home
        arr = home.view(out, "model output")
        if home.gpu:
            with self.scope():
                arr = home.ops.array(arr, "model output")
        if arr.ndim == 0 or arr.shape[0] != b:
            if checks is not None:
                checks.raise_first()  # an earlier batch's problem comes first, as it would have
            raise ValueError(
                f"model output: received shape {tuple(arr.shape)} for a batch of {b} inputs; expected "
                f"a batch of {b} outputs (first axis = batch)"
            )
        if not home.gpu:
            check_finite(arr, "model output")
        elif checks is not None:
            with self.scope():
                checks.nonfinite(arr, slot, "model output")
        elif arr.dtype.kind == "f" and arr.size:
            with self.scope():
                count, first = home.ops.nonfinite_rows(arr)
            if count:
                raise nonfinite_rows_error("model output", count, b, first)
        return arr

    def sample(self, count, stream, desc):
        """``count`` checked outputs, joined where they live."""
        from .bindings.device import DeferredChecks

        checks = DeferredChecks(self.sampler.batch_range(count)[0])  # used only if the outputs are on a device
        parts = list(self.batches(count, stream, desc, checks=checks))
        with self.scope():
            checks.raise_first()
            return self.where.home.concatenate(parts)

    def distances(self, count, stream, center, desc, first=0, stop=None):
        """float64 distances to ``center`` of batches ``[first, stop)`` of ``count`` fresh outputs.

        The values are :func:`cs_fast.bindings.distance.to_center64`'s on
        each batch. A numpy array, or a numba device array when the distances
        are computed on the device; a device ``center`` streams every batch
        into one preallocated array
        (:class:`cs_fast.bindings.device.CenterDistances`).
        """
        s = self.sampler
        at = resolve(s.backend, center, names=["center"])
        if not (at.gpu and at.resident):
            parts = [self.to_center(batch, center) for batch in self.batches(count, stream, desc, first, stop)]
            return self.where.concatenate(parts) if parts else np.empty(0)
        from .bindings.device import CenterDistances, DeferredChecks

        batches, total = s.batch_range(count, first, stop)
        checks = DeferredChecks(batches)
        outputs = self.batches(count, stream, desc, first, stop, checks=checks)
        # The first output decides this call's device, stream and pool when no sample came before it.
        head = list(itertools.islice(outputs, 1)) if self.where is None else []
        with self.scope():
            sink = CenterDistances(s.metric, s.metric_params, center, total, checks)
            for slot, batch in enumerate(itertools.chain(head, outputs)):
                sink.add(batch, slot)
            return sink.finish()

    def to_center(self, Z, center):
        """float64 distances of the rows of ``Z`` to ``center`` (:func:`cs_fast.bindings.distance.to_center64`)."""
        s = self.sampler
        return to_center64(Z, center, s.metric, s.metric_params, s.backend)[0]

    def base_distance(self, center):
        """float64 :math:`d(f(x), c)` of the base model's output at the clean input to ``center``, a Python float."""
        out = self.base_output()
        with self.scope():
            return self.where.scalar(self.to_center(out, center))

    def base_output(self):
        """The base model's output on the clean input, as a checked batch of one."""
        x = self.x
        if is_torch(x):
            import torch

            with torch.no_grad():
                out = self.sampler.model(x.unsqueeze(0))
        else:
            out = self.sampler.model(x[None])
        return self.check_output(out, 1)
