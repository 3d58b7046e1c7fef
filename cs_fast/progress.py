"""Progress on stderr: tqdm bars on a terminal, one plain line per stage anywhere else.

Nested tqdm bars (the demo's grid over the sampler's stages) move the cursor
with escape codes; in a log file or a pipe those arrive as stray ``\\x1b[A``
and hundreds of half-lines. When stderr is not a terminal a stage instead
prints one line when it ends (and a line when its label changes).
"""

import sys
import time


class _Lines:
    """tqdm's interface (update, set_postfix, close, context manager) writing one line per stage."""

    def __init__(self, total, desc, unit, stream):
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.n = 0
        self.postfix = ""
        self.start = time.perf_counter()
        self.closed = False

    def update(self, n=1):
        self.n += n

    def set_postfix(self, **values):
        postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if postfix != self.postfix:
            self.postfix = postfix
            self._line(f"{postfix} ({self.n}/{self.total} {self.unit}s)")

    def _line(self, text):
        print(f"{self.desc}: {text}", file=self.stream, flush=True)

    def close(self):
        if not self.closed:
            self.closed = True
            self._line(f"{self.n}/{self.total} {self.unit}s in {time.perf_counter() - self.start:.1f} s")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Off:
    n = 0

    def update(self, n=1):
        pass

    def set_postfix(self, **values):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def progress(total, desc, unit, enabled, leave=True, stream=None):
    """A progress reporter for ``total`` items of ``unit`` (singular): tqdm on a terminal, plain lines otherwise, or nothing.

    ``stream`` defaults to ``sys.stderr`` (read at call time, so redirections apply).
    """
    if not enabled:
        return _Off()
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=stream)
    return _Lines(total, desc, unit, stream)
