"""Train the digits autoencoder with Gaussian noise augmentation.

Run as ``python -m cs_fast.models.train_digits --out digits_autoencoder.pt``.

As in randomized smoothing, the model learns to reconstruct the *clean* image
from a noisy one, so that its outputs stay stable under the smoothing noise.
The paper trains one model per smoothing sigma (training noise = smoothing
noise); here one model sees a per-image sigma drawn uniformly from
``[sigma_min, sigma_max]``, which covers every sigma of the demo
(eps1 / h for eps1 in 0.2..1.0, h in {1.5, 2}: 0.1 to 0.67). Setting
``sigma_min == sigma_max`` gives the paper's single-sigma setup.

Training is deterministic for a given seed (fixed initialisation, batch order
and noise from explicit generators) on a given machine and torch version.
"""

import argparse
import time

import torch
from torch import nn

from .digits import DigitsAutoencoder, digits_data

EPOCHS = 80
BATCH_SIZE = 64
LR = 3e-3
SIGMA_MIN = 0.0
SIGMA_MAX = 0.7


def train_digits_autoencoder(epochs=EPOCHS, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, seed=0,
                             batch_size=BATCH_SIZE, lr=LR):
    """Train a :class:`~cs_fast.models.digits.DigitsAutoencoder` on the train split.

    Parameters
    ----------
    epochs : int
        Passes over the 1437 training digits.
    sigma_min, sigma_max : float
        Each training image gets noise ``N(0, s^2 I)`` with ``s`` uniform in
        ``[sigma_min, sigma_max]``, redrawn every epoch. Loss: MSE between the
        reconstruction and the clean image.
    seed : int
        Seeds initialisation, batch order and noise; the global torch RNG is
        left as it was.
    batch_size : int
    lr : float
        Adam learning rate, cosine-annealed to zero.

    Returns
    -------
    model : DigitsAutoencoder
        In eval mode.
    history : list of float
        Mean training loss per epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs: received {epochs}; expected an integer >= 1")
    if not 0.0 <= sigma_min <= sigma_max:
        raise ValueError(f"sigma_min, sigma_max: received {sigma_min}, {sigma_max}; expected 0 <= sigma_min <= sigma_max")
    x = digits_data("train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsAutoencoder()
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.MSELoss()
    history = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), batch_size):
            clean = x[order[start:start + batch_size]]
            s = sigma_min + (sigma_max - sigma_min) * torch.rand((len(clean), 1, 1, 1), generator=gen)
            noisy = clean + s * torch.randn(clean.shape, generator=gen)
            loss = loss_fn(model(noisy), clean)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(clean)
        history.append(total / len(x))
    return model.eval(), history


def build_parser():
    """Command-line options of the training script."""
    p = argparse.ArgumentParser(prog="python -m cs_fast.models.train_digits",
                                description="Train the 8x8 digits autoencoder with Gaussian noise augmentation.")
    p.add_argument("--out", required=True, help="where to write the state_dict (.pt)")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--sigma-min", type=float, default=SIGMA_MIN)
    p.add_argument("--sigma-max", type=float, default=SIGMA_MAX)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--lr", type=float, default=LR)
    return p


def main(argv=None):
    """Train, report the held-out MSE at a few noise levels, save the state_dict."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    model, history = train_digits_autoencoder(args.epochs, args.sigma_min, args.sigma_max, args.seed,
                                              args.batch_size, args.lr)
    elapsed = time.perf_counter() - t0
    torch.save(model.state_dict(), args.out)
    test = digits_data("test")
    gen = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        errs = {s: float(((model(test + s * torch.randn(test.shape, generator=gen)) - test) ** 2).mean())
                for s in (0.0, 0.25, 0.5)}
    baseline = float(((test - digits_data("train").mean(0)) ** 2).mean())
    errs_txt = ", ".join(f"sigma={s}: {e:.4f}" for s, e in errs.items())
    print(f"trained {args.epochs} epochs in {elapsed:.1f}s; final train loss {history[-1]:.4f}; "
          f"test MSE {errs_txt} (mean-image baseline {baseline:.4f}); saved {args.out}")


if __name__ == "__main__":
    main()
