"""Progress output: tqdm on a terminal; plain lines, no escape codes, when stderr is a file or pipe."""

import io

import numpy as np

from cs_fast import CenterSmoothing
from cs_fast.progress import progress


def _boxes(x):
    return np.repeat(np.array([[0.0, 0.0, 2.0, 2.0]]), len(x), axis=0)


def test_smoothing_progress_to_a_non_terminal_is_one_line_per_stage(capsys):
    cs = CenterSmoothing(_boxes, "jaccard", 0.5, batch_size=500, seed=1, progress=True)
    assert not cs.certify(np.zeros(3), 0.1, n=2000, m=300).abstained
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err
    lines = [line for line in err.splitlines() if "compiling the numba kernels" not in line]
    stages = [line.split(":")[0] for line in lines]
    assert stages == ["center samples", "mass check", "certification"], err
    assert lines[0].startswith("center samples: 2000/2000 samples in ")


def test_nested_bars_write_no_escape_codes_to_a_file():
    log = io.StringIO()
    with progress(4, "certifying", "input", True, stream=log) as outer:
        for h in (1.5, 2.0):
            outer.set_postfix(h=h)
            for _ in range(2):
                inner = progress(10, "mass check", "sample", True, leave=False, stream=log)
                inner.update(10)
                inner.close()
                outer.update(1)
    text = log.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert text.splitlines() == [
        "certifying: h=1.5 (0/4 inputs)",
        *[line for line in text.splitlines()[1:3]],
        "certifying: h=2.0 (2/4 inputs)",
        *[line for line in text.splitlines()[4:6]],
        text.splitlines()[6],
    ]
    assert all(line.startswith("mass check: 10/10 samples in ") for line in text.splitlines()[1:3] + text.splitlines()[4:6])
    assert text.splitlines()[6].startswith("certifying: 4/4 inputs in ")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_tqdm():
    term = _Terminal()
    bar = progress(5, "x", "sample", True, stream=term)
    bar.update(5)
    bar.close()
    assert "\r" in term.getvalue() and "5/5" in term.getvalue()


def test_disabled_prints_nothing():
    log = io.StringIO()
    with progress(5, "x", "sample", False, stream=log) as bar:
        bar.update(5)
        bar.set_postfix(a=1)
    assert log.getvalue() == ""
