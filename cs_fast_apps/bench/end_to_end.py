"""End to end: the time to certify one input, split into model forward and cs_fast time."""

import time


class _TimedModel:
    """Wraps a model and accumulates the wall time of its calls (synchronizing CUDA)."""

    def __init__(self, model):
        self.model = model
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, batch):
        t0 = time.perf_counter()
        out = self.model(batch)
        if getattr(getattr(out, "device", None), "type", "cpu") == "cuda":
            import torch

            torch.cuda.synchronize(out.device)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


#: Settings under which a tiny certification (n = m = 64 at eps1 = 0) certifies: a warm-up that
#: compiles every kernel of the path before the timed run.
WARMUP = dict(eps1=0.0, n=64, m=64, delta=0.4, alpha1=0.3, alpha2=0.3)


def end_to_end(factory, model, x, *, eps1, n, m, **certify_kwargs):
    """Certify ``x`` once and split the wall time between the model and cs_fast.

    Parameters
    ----------
    factory : callable
        ``factory(model) -> cs_fast.CenterSmoothing``. It receives a timing
        wrapper around ``model`` and must build the smoother on it.
    model : callable
        The base model (a batch of inputs to a batch of outputs).
    x : numpy.ndarray or torch.Tensor
        The input to certify.
    eps1 : float
        Input l2 radius to certify.
    n, m : int
        Samples to pick/check the center and to certify (see
        :meth:`cs_fast.CenterSmoothing.certify`).
    **certify_kwargs
        ``delta``, ``alpha1``, ``alpha2`` of ``certify`` (:data:`WARMUP` for a warm-up run).

    Returns
    -------
    dict
        ``total_s``; ``model_s`` (forward passes, device-synchronized);
        ``cs_fast_s`` = total - model (noise sampling, distances, center
        selection, bounds); ``model_calls``; ``samples`` (2 n + m + 1 when
        it certifies); ``abstained``, ``reason`` and ``eps_out``.
    """
    timed = _TimedModel(model)
    smoother = factory(timed)
    t0 = time.perf_counter()
    cert = smoother.certify(x, eps1, n=n, m=m, **certify_kwargs)
    total = time.perf_counter() - t0
    return {
        "total_s": total, "model_s": timed.seconds, "cs_fast_s": total - timed.seconds,
        "model_calls": timed.calls, "n": n, "m": m, "eps1": eps1,
        "metric": smoother.metric.name, "abstained": bool(cert.abstained), "reason": cert.reason,
        "eps_out": cert.eps_out,
    }


def demo_end_to_end(quick=False):
    """:func:`end_to_end` on the demo model: the digits autoencoder certified in ``tv``.

    Full: the paper's n = 10^4, m = 10^6; quick: n = 4000, m = 10^4. One
    held-out digit, eps1 = 0.4, sigma = eps1 / 2.
    """
    import cs_fast
    from cs_fast.models.digits import digits_data, load_digits_autoencoder

    n, m = (4000, 10_000) if quick else (10_000, 1_000_000)
    model = load_digits_autoencoder()
    x = digits_data("test")[0]

    def factory(wrapped):
        return cs_fast.CenterSmoothing(wrapped, "tv", 0.2, batch_size=10_000, seed=0)

    # The first certify compiles the kernels; time the second.
    end_to_end(factory, model, x, **WARMUP)
    return end_to_end(factory, model, x, eps1=0.4, n=n, m=m)
