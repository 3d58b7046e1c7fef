"""Mutation testing of the certificate code: does a test fail when the code is changed a little?

    python bench/mutation.py [--targets bounds,smoothing,select] [--out bench/results/mutation]
                             [--workers 1] [--timeout 600] [--limit N] [--list]

A small, self-contained mutation tool (mutmut and cosmic-ray rewrite functions
into trampolines that numba cannot compile). It copies the working tree to
``--workers`` scratch folders; in each, one process imports cs_fast and runs
the target's tests once unmutated (numba compiles, the lines the tests run are
traced), then forks a child per mutant that executes the mutated source in the
live module, points every reference to the old functions and classes at the
new ones, and runs the tests (``pytest -x``):

* killed: a test failed or errored, or the tests ran past ``--timeout``;
* survived: every test passed. Survivors are listed with their line for a
  reviewer to judge: *equivalent* (no behaviour changes), *validation only*
  (an input check, not a certificate quantity), or a missing test;
* not covered: no test of the run executes the line (not run).

``select.py`` mutants run as plain Python against ``tests/test_select_kernels.py``
(the source numba compiles, called directly): a compiled mutant would
recompile every kernel, minutes each.

Mutation operators, on the token stream (strings, docstrings and comments are
never touched, nor lines marked ``# no mutate``): comparison flips (``<`` and
``<=``, ``>`` and ``>=``, ``==`` and ``!=``), arithmetic swaps (``+``/``-``,
``*``/``/``, ``//``/``/``, ``+=``/``-=``), number constants ``c -> c + 1``
(and ``1 -> 0``), ``min``/``max``, ``ceil``/``floor``, ``True``/``False``,
``and``/``or``, and dropping a ``not``.

Not a CI step: it takes tens of minutes. Writes ``report.md`` and
``mutants-<target>.json`` into ``--out`` (after every mutant: an interrupted
run leaves a partial report); survivors listed in :data:`JUDGED` are reported with the reason
they are equivalent (or harmless), every other survivor as *not judged*.
"""

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The certificate tests: every quantity of a certificate recomputed independently, the bounds, the smoother.
# The fastest, most pointed tests first: pytest -x stops at the first failure.
CERT_TESTS = ["tests/test_certificate_exact.py", "tests/test_bounds.py", "tests/test_bounds_exact.py",
              "tests/test_smoothing.py", "tests/test_certificate_record.py", "tests/test_certificate_pins.py",
              "tests/test_first_hour.py"]
TARGETS = {
    "bounds": ("cs_fast/bounds.py", CERT_TESTS),
    "smoothing": ("cs_fast/smoothing.py", CERT_TESTS),
    # The selection source run as plain Python against np.sort (a compiled mutant would recompile every
    # kernel: minutes each); the compiled kernels' parity is tests/test_min_median.py.
    "select": ("cs_fast/kernels/select.py", ["tests/test_select_kernels.py"]),
}

SWAP_OPS = {"<": ["<="], "<=": ["<"], ">": [">="], ">=": [">"], "==": ["!="], "!=": ["=="],
            "+": ["-"], "-": ["+"], "*": ["/"], "/": ["*"], "//": ["/"], "+=": ["-="], "-=": ["+="]}
SWAP_NAMES = {"min": "max", "max": "min", "ceil": "floor", "floor": "ceil", "True": "False",
              "False": "True", "and": "or", "or": "and"}

# Survivors judged by a reviewer: (file, line text stripped, original token, replacement) -> reason.
# A survivor matches on the line's text, so the judgement survives edits elsewhere in the file.
VALIDATION = ("validation only: widens or narrows an input check of a public function; no caller passes such "
              "a value (q = p + a positive margin, p is a probability), and the certificate quantities are "
              "unchanged")
JUDGED = {
    ("cs_fast/bounds.py", "if not 0.0 <= p <= 1.0:", "<=", "<"): VALIDATION,
    ("cs_fast/bounds.py", "if not 0.0 <= p <= 1.0:", "1.0", "2.0"): VALIDATION,
    ("cs_fast/bounds.py", "if not 0.0 < q <= 1.0:", "<", "<="): VALIDATION + " (q = 0 would give rank 1)",
    ("cs_fast/bounds.py", "d = np.asarray(distances, dtype=np.float64).reshape(-1)", "1", "2"):
        "equivalent: numpy reads any negative size in reshape as 'the rest' (reshape(-2) == reshape(-1))",
    ("cs_fast/bounds.py", "return float(np.partition(d, k - 1)[k - 1])", "1", "2"):
        "not less conservative: partitioning at k-2 leaves entries >= the (k-1)-th from position k-1 on, so "
        "the value read is >= the k-th smallest (a larger R); numpy's introselect happened to return the "
        "exact k-th on the tests' data. A test that pins R on data where the positions after k-2 stay "
        "unsorted would kill it",
    ("cs_fast/smoothing.py", "return float(np.partition(d, k - 1)[k - 1])", "1", "2"):
        "equivalent in practice, judged by experiment: np.partition(d, k - 2)[k - 1] is the exact k-th "
        "smallest on every array tried (tests/test_certificate_exact.py's 300 small arrays with ties, and "
        "200 random arrays of 100 to 10^5 values with and without ties): numpy's introselect leaves the "
        "position after kth in order. Were it not, the value read would be >= the lower median (a larger r, "
        "an easier mass check); no test can tell the two apart while numpy behaves this way",
    ("cs_fast/bounds.py", "k = math.ceil(q * m * (1.0 + 8.0 * np.finfo(np.float64).eps))", "8.0", "9.0"):
        "more conservative, never less: a 9-ulp window rounds up in a superset of the 8-ulp cases; the "
        "by-value tests sit outside the 8-9 ulp band",
    ("cs_fast/bounds.py", "return max(1, min(m, k))", "1", "0"):
        "equivalent for every caller: order_statistic refuses q <= 0, and q > 0 gives ceil(q m (1 + 8 eps)) >= 1",
    ("cs_fast/kernels/select.py", "while hi > lo:", ">", ">="):
        "equivalent: one more pass on a one-element range swaps the element with itself and returns it",
    ("cs_fast/kernels/select.py", "if buf[mid] < buf[lo]:", "<", "<="):
        "equivalent: also swapping equal values leaves the values in place",
    ("cs_fast/kernels/select.py", "if buf[hi] < buf[lo]:", "<", "<="):
        "equivalent: also swapping equal values leaves the values in place",
    ("cs_fast/kernels/select.py", "if buf[hi] < buf[mid]:", "<", "<="):
        "equivalent: also swapping equal values leaves the values in place",
    ("cs_fast/smoothing.py", "N_DEFAULT = 10_000", "10_000", "10001"):
        "a default sample count (the paper's n); certificates are exact for any n, none is less conservative",
    ("cs_fast/smoothing.py", "M_DEFAULT = 1_000_000", "1_000_000", "1000001"):
        "a default sample count (the paper's m); certificates are exact for any m, none is less conservative",
    ("cs_fast/smoothing.py", "seed=None, progress=False, candidates=None, allow_weak_candidates=False):", "False",
     "True"): "progress=True by default (the first of the two False): display only",
    ("cs_fast/smoothing.py", "def __init__(self, model, metric, sigma, *, metric_params=None, batch_size=1000, "
     "backend=\"auto\",", "1000", "1001"): "a default batch size; certificates are sound for any batch size",
    ("cs_fast/smoothing.py", "return root.spawn(4)", "4", "5"):
        "equivalent: SeedSequence.spawn(5)[:4] has the same spawn keys as spawn(4); only four are used",
    ("cs_fast/smoothing.py", "gen.manual_seed(int(stream.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))", "1",
     "2"): "equivalent: generate_state(2)[0] == generate_state(1)[0] (checked)",
    ("cs_fast/smoothing.py", "bar = progress(count, desc, \"sample\", self.progress, leave=False)", "False", "True"):
        "display only (whether a finished progress bar stays on screen)",
    ("cs_fast/smoothing.py", "@dataclass(frozen=True)", "True", "False"):
        "equivalent for every computation: the result becomes mutable, nothing in cs_fast writes to it",
    ("cs_fast/smoothing.py", "if not isinstance(x, np.ndarray) or x.dtype.kind != \"f\":", "or", "and"): VALIDATION,
    ("cs_fast/smoothing.py", "if candidates is None or allow_weak or not alpha > 0 or 2.0 ** -candidates <= alpha:",
     "<=", "<"): "more conservative: also refuses k with 2**-k exactly equal to alpha",
    ("cs_fast/smoothing.py", "if candidates is None or allow_weak or not alpha > 0 or 2.0 ** -candidates <= alpha:",
     ">", ">="): "equivalent: alpha <= 0 is refused by the alpha checks before (the comment on the line says so)",
    ("cs_fast/smoothing.py", "delta = check_open_interval(delta, \"delta\", 0.0, 0.5)", "0.5", "1.5"):
        "equivalent: bounds.required_mass checks the same interval (0, 0.5) two lines below",
}

# Survivors judged by category in cs_fast/bounds.py: (a substring of the line's text, the original
# token or None for every token of the line) -> reason. :func:`judgement` reads JUDGED first.
KNIFE = ("knife edge: differs only where two floats are exactly equal (a tail exactly at the accepted level, q "
         "exactly 1, a margin exactly delta, a level exactly the target); either choice is sound there")
SEARCH = ("equivalent: the start, bracket or step of a search whose result is corrected after it (the adjusting "
          "loops, the bisection's final check); the answer is pinned by value and by a full scan "
          "(tests/test_bounds_exact.py), the change costs steps only")
FROZEN = "equivalent for every computation: the result becomes mutable, nothing in cs_fast writes to it"
TWO_ROUTES = ("equivalent by design: it lowers one of the two evaluations of the same tail (betainc, bdtrc); the "
              "max of both keeps the exact one")
OUTSIDE = ("equivalent: it changes only entries with k outside [1, m], which the outer np.where replaces by the "
           "exact edge values (1 below, 0 above; k = 0 gives 1 by either route)")
NDIM = "equivalent: a 0-d array in place of a float compares and converts alike"
CLIP = ("equivalent: the padded probability exceeds 1 only when p is within 1e-12 of 1 (or never, for 1/2 - delta), "
        "where no m certifies in either form")
PAD = ("numerical margin dominated by another: the 1e-12 padding of p changes a tail by about 1e-9 relative at "
       "the tests' sizes, inside the 1e-6 hair that test_a_tail_within_the_hair_below_alpha_is_refused pins, so "
       "no test can see it alone; it stands for ndtr's rounding and the strict mass of the two-balls argument")
INT = ("equivalent: the ranks and thresholds compared are integers, so k <= n/2 + 1 and k <= n//2 + 1 agree "
       "(and _tail casts n/2 + 1 to the same integer)")
CAP_EQ = "equivalent: where the two ranks are equal the cap returns the same number"
UNREACH = ("equivalent: a level at or below p is never reached, and the search then doubles to its 10^12 guard "
           "and returns None, as the early return does")
CORRECTION = ("unexercised safety net: the closed-form start before this correction step (a ceil of a value "
              "computed in floating point, which could round one off) is already the answer on every case the "
              "tests run, so the step never executes; the answers are pinned by value and by full scans "
              "(tests/test_bounds_exact.py), so a mutant here could matter only for a start that is one off")
JUDGED_BOUNDS_LINES = [
    ("k -= 1", None, CORRECTION),
    ("k += 1", None, CORRECTION),
    ("m -= 1", None, CORRECTION),
    ("m += 1", None, CORRECTION),
    ("top += 1", None, CORRECTION),
    ("top -= 1", None, CORRECTION),
    ("low -= 1", None, CORRECTION),
    ("inside = (k >= 1) & (k <= m)", None, OUTSIDE),
    ("kk = np.where(inside, k, 1)", None, OUTSIDE),
    ("both = np.maximum(betainc(", None, TWO_ROUTES),
    ("out = np.where(inside, both, np.where(k < 1, 1.0, 0.0))", None, OUTSIDE),
    ("return float(out) if out.ndim == 0 else out", None, NDIM),
    ("@dataclass(frozen=True)", None, FROZEN),
    ("check_open_interval(", None, VALIDATION),
    ("def require_certifiable(", None, "defaults of a public function: the callers (certify, the CLI, the sweeps) pass every value; test_require_certifiable_defaults_are_the_papers checks the certified ranks, which these defaults do not change for n = 1000, m = 10 000"),
    ("return threshold, threshold is not None and threshold <= n // 2 + 1", "//", INT),
    ("return bool(_tail(n, pi, n // 2 + 1)", "//", INT),
    ("pi = min(1.0, p + PROBABILITY_PAD)", "1.0", CLIP),
    ("pi = min(1.0, 0.5 - delta + PROBABILITY_PAD)", "1.0", CLIP),
    ("pi = min(1.0, p + PROBABILITY_PAD)", "+", PAD),
    ("pi = min(1.0, 0.5 - delta + PROBABILITY_PAD)", "+", PAD),
    ("if paper is not None and (k is None or paper < k):", "<", CAP_EQ),
    ("if low is None or level <= p:", "or", UNREACH),
    # knife edges
    ("return None if q > 1.0 else order_rank(q, m)", None, KNIFE),
    ("if _tail(m, pi, m) > accept:", ">", KNIFE),
    ("if _tail(m, pi, mid) <= accept:", "<=", KNIFE),
    ("return lo if _tail(m, pi, lo) <= accept else None", "<=", KNIFE),
    ("if delta1 > delta:", ">", KNIFE),
    ("elif delta2 > delta:", ">", KNIFE),
    ("return not 0.5 - (count / n - delta1) > delta", ">", KNIFE),
    ("if q > 1.0:", ">", KNIFE),
    ("return quantile_level(p, m, alpha2) <= 1.0", "<=", KNIFE),
    ("return bool(_tail(n, pi, n // 2 + 1) <= (alpha1 / 2.0)", "<=", KNIFE),
    ("if low is None or level <= p:", "<=", KNIFE),
    ("return got is not None and got <= level", "<=", KNIFE),
    # searches
    ("lo, hi = 1, m", None, SEARCH),
    ("k = min(n, max(0, math.ceil(n * (0.5 - delta + delta1))))", None, SEARCH),
    ("while k > 0 and passes(k - 1):", None, SEARCH),
    ("while k <= n and not passes(k):", None, SEARCH),
    ("return k if k <= n else None", None, "equivalent: the threshold is n only for n = 1, where Hoeffding's margin already exceeds every delta (no threshold at all)"),
    ("guess = math.log(1.0 / alpha2) / (2.0 * (1.0 - p) ** 2)", None, SEARCH),
    ("guess = math.log(alpha2 * (1.0 - TAIL_HAIR)) / math.log(pi) if pi > 0 else 1.0", None, SEARCH),
    ("if guess > 1e15:", None, SEARCH),
    ("m = max(1, math.ceil(guess))", None, SEARCH),
    ("while m > 1 and ok(m - 1):", None, SEARCH),
    ("top = max(1, math.ceil(math.log(2.0 / alpha1) / (2.0 * delta * delta)))", None, SEARCH),
    ("while top > 1 and paper_threshold(top - 1, delta, alpha1) is not None:", None, SEARCH),
    ("for parity in (0, 1):", None, SEARCH),
    ("hi = top + ((top - parity) % 2)", None, SEARCH),
    ("a, b = 0, (hi - lo) // 2", None, SEARCH),
    ("while n0 > 1 and n0 - 1 >= firsts[(n0 - 1) % 2]:", None, SEARCH),
    ("high = max(low, 1)", None, SEARCH),
    ("high *= 2", None, SEARCH),
    ("if high > 10 ** 12:", None, SEARCH),
    ("low = mid + 1", None, SEARCH),
    ("while low > 1 and ok(low - 1):", None, SEARCH),
]


def judgement(file, text, orig, repl):
    """The reviewer's reason a surviving mutant is equivalent or harmless, or None (not judged)."""
    exact = JUDGED.get((file, text, orig, repl))
    if exact is not None or file != "cs_fast/bounds.py":
        return exact
    for part, token, reason in JUDGED_BOUNDS_LINES:
        if part in text and (token is None or token == orig):
            return reason
    return None


def _number_mutants(text):
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return []
        return [repr(value + 1.0)]
    return [str(value + 1)] + (["0"] if value == 1 else [])


def mutants(source):
    """Every mutant of ``source``: dicts with ``line``, ``col``, ``orig``, ``repl`` and ``source``."""
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln))
    out = []
    toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, tok in enumerate(toks):
        (row, col), (erow, ecol) = tok.start, tok.end
        if row != erow or row > len(lines) or "no mutate" in lines[row - 1]:
            continue
        repls = []
        if tok.type == tokenize.OP and tok.string in SWAP_OPS:
            repls = SWAP_OPS[tok.string]
        elif tok.type == tokenize.NUMBER:
            repls = _number_mutants(tok.string)
        elif tok.type == tokenize.NAME and tok.string in SWAP_NAMES:
            repls = [SWAP_NAMES[tok.string]]
        elif tok.type == tokenize.NAME and tok.string == "not":
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if nxt is not None and nxt.string == "in":
                continue
            repls = [""]
        prev = toks[i - 1].string if i else ""
        if tok.string in ("*", "/") and prev in ("(", ","):
            continue  # a keyword-only marker or *args, not a product
        start = offsets[row - 1] + col
        end = offsets[row - 1] + ecol
        for r in repls:
            new = source[:start] + r + source[end:]
            out.append({"line": row, "col": col, "orig": tok.string, "repl": r,
                        "text": lines[row - 1].strip(), "source": new})
    return out


def _function_lines(source):
    """Line numbers inside function bodies (module-level lines run at import and are always covered)."""
    import ast

    inside = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0].lineno
            inside.update(range(first, node.end_lineno + 1))
    return inside


def _copy_tree(dst):
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis",
                                    "results", "cs_fast_*_*", "*.egg-info")
    for name in ("cs_fast", "tests", "bench"):
        shutil.copytree(os.path.join(REPO, name), os.path.join(dst, name), ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml", "conftest.py", "pytest.ini"):
        if os.path.exists(os.path.join(REPO, name)):
            shutil.copy2(os.path.join(REPO, name), dst)


# --------------------------------------------------------------------------- fork server (pure-Python targets)
# bounds.py and smoothing.py are plain Python: one process imports everything and runs the clean tests once
# (numba compiles, test modules import), then forks a child per mutant, which executes the mutated source in the
# live module, points every reference to the old functions and classes at the new ones, and runs pytest. A mutant
# then costs its tests, not a fresh interpreter. numba runs on its fork-safe 'workqueue' threading layer and
# torch on one thread here (GNU OpenMP is not fork-safe).

def _apply_mutant(modname, source):
    import importlib
    import types

    mod = importlib.import_module(modname)
    old = dict(mod.__dict__)
    exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    swaps = {}
    for name, new in mod.__dict__.items():
        was = old.get(name)
        if was is not None and was is not new and isinstance(was, (types.FunctionType, type)):
            swaps[id(was)] = new
    for m in list(sys.modules.values()):
        d = getattr(m, "__dict__", None)
        if not isinstance(d, dict) or m is mod:
            continue
        for k, v in list(d.items()):
            if id(v) in swaps and isinstance(v, (types.FunctionType, type)):
                d[k] = swaps[id(v)]


def serve(key, jobs_path, out_path, timeout):
    """Run in the scratch tree: clean tests (traced), then each mutant of ``jobs_path`` in a forked child."""
    import importlib
    import signal
    import threading

    import pytest

    rel, tests = TARGETS[key]
    modname = rel[:-3].replace("/", ".")
    importlib.import_module(modname)
    path = os.path.abspath(rel)
    lines = set()

    def local(frame, event, arg):
        if event == "line":
            lines.add(frame.f_lineno)
        return local

    def tracer(frame, event, arg):
        if frame.f_code.co_filename == path:
            lines.add(frame.f_lineno)
            return local
        return None

    args = ["-x", "-q", "-p", "no:cacheprovider", *tests]
    t0 = time.perf_counter()
    sys.settrace(tracer)
    threading.settrace(tracer)
    rc = pytest.main(args)
    sys.settrace(None)
    threading.settrace(None)
    clean_s = time.perf_counter() - t0
    with open(jobs_path) as fh:
        jobs = json.load(fh)
    with open(out_path, "w") as out:
        out.write(json.dumps({"clean_rc": int(rc), "clean_s": clean_s, "lines": sorted(lines)}) + "\n")
        out.flush()
        if rc != 0:
            return 1
        uncovered = _function_lines(open(path).read()) - lines
        for job in jobs:
            if job["line"] in uncovered:
                out.write(json.dumps({"i": job["i"], "status": "not covered", "seconds": 0.0, "killed_by": None})
                          + "\n")
                out.flush()
                continue
            t0 = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                try:
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, 1)
                    os.dup2(devnull, 2)
                    _apply_mutant(modname, job["source"])
                    code = int(pytest.main(args))
                except BaseException:
                    code = 3
                os._exit(code)
            status = None
            while status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(st)
                    status = "survived" if code == 0 else "killed"
                elif time.perf_counter() - t0 > timeout:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    status = "timeout"
                else:
                    time.sleep(0.05)
            out.write(json.dumps({"i": job["i"], "status": status, "seconds": round(time.perf_counter() - t0, 1),
                                  "killed_by": None}) + "\n")
            out.flush()
    return 0


def _run_served(key, trees, found, out_dir, results, timeout, log, rows=None, slots=None):
    """Split ``found`` over one fork server per tree; collect rows as they come.

    ``rows``/``slots``: fill ``rows[slots[i]]`` instead of a fresh list (a recheck of some mutants).
    """
    rel, tests = TARGETS[key]
    rows = [None] * len(found) if rows is None else rows
    slots = list(range(len(found))) if slots is None else slots
    results["targets"][key] = {"file": rel, "tests": tests, "clean_run_s": None, "mutants": rows,
                               "runner": "fork server"}
    procs = []
    for w, tree in enumerate(trees):
        jobs = [dict(mt, i=i) for i, mt in enumerate(found) if i % len(trees) == w]
        jobs_path = os.path.join(tree, f"jobs_{key}.json")
        with open(jobs_path, "w") as fh:
            json.dump(jobs, fh)
        out_path = os.path.join(tree, f"out_{key}.jsonl")
        open(out_path, "w").close()
        env = dict(os.environ, PYTHONPATH=tree, PYTHONDONTWRITEBYTECODE="1", NUMBA_THREADING_LAYER="workqueue",
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_CACHE_DIR=os.path.join(tree, "numba_cache"))
        env.setdefault("NUMBA_NUM_THREADS", "2")
        cmd = [sys.executable, os.path.join(tree, "bench", "mutation.py"), "--serve", key, "--jobs", jobs_path,
               "--results", out_path, "--timeout", str(timeout)]
        log_fh = open(os.path.join(tree, f"serve_{key}.log"), "w")
        procs.append((subprocess.Popen(cmd, cwd=tree, env=env, stdout=log_fh, stderr=subprocess.STDOUT), out_path,
                      log_fh))
    seen = [0] * len(procs)
    while True:
        alive = False
        for w, (proc, out_path, _) in enumerate(procs):
            alive |= proc.poll() is None
            with open(out_path) as fh:
                got = fh.read().splitlines()
            for line in got[seen[w]:]:
                rec = json.loads(line)
                if "clean_rc" in rec:
                    if rec["clean_rc"] != 0:
                        raise RuntimeError(f"{key}: the tests fail on the unmutated code (see serve_{key}.log)")
                    results["targets"][key]["clean_run_s"] = round(rec["clean_s"], 1)
                    continue
                mt = found[rec["i"]]
                rows[slots[rec["i"]]] = _row(mt, status=rec["status"], seconds=rec["seconds"], killed_by=None,
                                      judged=judgement(rel, mt["text"], mt["orig"], mt["repl"])
                                      if rec["status"] in ("survived", "not covered") else None)
                log(f"  {rel}:{mt['line']} {mt['orig']!r} -> {mt['repl']!r}: {rec['status']} ({rec['seconds']} s)")
                _write(results, out_dir)
            seen[w] = len(got)
        if not alive:
            break
        time.sleep(1.0)
    for proc, _, fh in procs:
        fh.close()
        if proc.returncode not in (0,):
            raise RuntimeError(f"{key}: a fork server failed with status {proc.returncode}")


def _row(mt, **extra):
    row = {k: mt[k] for k in ("line", "col", "orig", "repl", "text")}
    row.update(extra)
    return row


def _write(results, out_dir):
    """``mutants-<target>.json`` per target of this run; ``report.md`` over every such file in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    for key, t in results["targets"].items():
        tmp = os.path.join(out_dir, f".mutants-{key}.json.{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump({"started": results["started"], "command": results["command"], "target": key, **t}, fh,
                      indent=1)
        os.replace(tmp, os.path.join(out_dir, f"mutants-{key}.json"))  # atomic: a parallel run never reads half
    merged = {"targets": {}}
    for key in TARGETS:
        p = os.path.join(out_dir, f"mutants-{key}.json")
        if key in results["targets"]:
            merged["targets"][key] = dict(results["targets"][key], started=results["started"])
        elif os.path.exists(p):
            try:
                with open(p) as fh:
                    merged["targets"][key] = json.load(fh)
            except ValueError:  # another run is rewriting it: its own next write updates the report
                pass
    tmp = os.path.join(out_dir, f".report.md.{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(report(merged))
    os.replace(tmp, os.path.join(out_dir, "report.md"))


def run(targets, out_dir, timeout=600.0, limit=None, workers=1, log=print, recheck=False):
    """Run the mutants of ``targets`` (keys of :data:`TARGETS`); write the report as it goes and return it.

    ``workers`` scratch copies of the tree run mutants side by side (one file per
    copy is mutated at a time). ``report.md`` and ``mutants.json`` are rewritten
    after every mutant, so an interrupted run still leaves its partial report.
    A mutant whose tests run longer than ``timeout`` seconds is killed (timeout).
    """
    trees = [tempfile.mkdtemp(prefix="cs_fast_mutation_") for _ in range(max(1, workers))]
    results = {"targets": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": None,
               "command": "python bench/mutation.py " + " ".join(sys.argv[1:])}
    try:
        for tree in trees:
            _copy_tree(tree)
        for key in targets:
            rel, tests = TARGETS[key]
            with open(os.path.join(trees[0], rel)) as fh:
                original = fh.read()
            found = mutants(original)[:limit]
            previous = os.path.join(out_dir, f"mutants-{key}.json")
            if recheck and os.path.exists(previous):
                # Only the previous survivors, with the current tests; every other row is kept as it was.
                with open(previous) as fh:
                    prev = json.load(fh)
                shutil.copy(previous, previous + ".before-recheck")  # the partial writes below replace it
                rows = prev["mutants"]
                if len(rows) != len(found):
                    raise RuntimeError(f"{key}: the file changed since {previous}; run without --recheck")
                # Survivors, and mutants an interrupted run never reached.
                again = [i for i, r in enumerate(rows) if r is None or r["status"] == "survived"]
                _run_served(key, trees, [found[i] for i in again], out_dir, results, timeout, log,
                            rows=rows, slots=again)
                results["targets"][key].update(clean_run_s=prev.get("clean_run_s"),
                                               rechecked=f"{len(again)} survivors or unrun mutants rerun with "
                                                         f"{', '.join(TARGETS[key][1])}")
            else:
                _run_served(key, trees, found, out_dir, results, timeout, log)
            results["targets"][key]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            _write(results, out_dir)
    finally:
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write(results, out_dir)
    return results


def report(results):
    """The markdown summary: counts per file, then every survivor with its judgement."""
    lines = ["# Mutation testing of the certificate code", "",
             "Command: `python bench/mutation.py` (all targets; `--targets bounds,smoothing,select` for a subset). "
             "A mutant is killed when a test fails, errors or runs past the timeout.", ""]
    for key, t in results["targets"].items():
        with open(os.path.join(REPO, t["file"])) as fh:
            now = [(m["line"], m["orig"], m["repl"], m["text"]) for m in mutants(fh.read())]
        ran = [(r["line"], r["orig"], r["repl"], r["text"]) for r in t["mutants"] if r is not None]
        current = ran == now[:len(ran)] and len(t["mutants"]) == len(now)
        lines.append(f"- `{t['file']}`: started {t.get('started')}, "
                     + (f"finished {t['finished']}" if t.get("finished") else "STILL RUNNING (partial counts)")
                     + f"; clean run of its tests {t.get('clean_run_s')} s"
                     + (f"; {t['rechecked']}" if t.get("rechecked") else "") + "; "
                     + ("its mutants are those of the file as it is now." if current else
                        "**STALE: the file has changed since this run; its counts describe the earlier "
                        "version** (run the target again)."))
    lines += ["",
             "| file | mutants | killed | timeout | survived: judged | survived: not judged | "
             "on lines no test runs | tests |",
             "|---|---|---|---|---|---|---|---|"]
    for key, t in results["targets"].items():
        rows = [r for r in t["mutants"] if r is not None]
        count = {s: sum(r["status"] == s for r in rows) for s in ("killed", "timeout", "survived", "not covered")}
        judged = sum(1 for r in rows if r["status"] == "survived" and r.get("judged"))
        lines.append(f"| `{t['file']}` | {len(rows)} | {count['killed']} | {count['timeout']} | {judged} | "
                     f"{count['survived'] - judged} | {count['not covered']} | {', '.join(t['tests'])} |")
    for key, t in results["targets"].items():
        surv = [r for r in t["mutants"] if r is not None and r["status"] in ("survived", "not covered")]
        if not surv:
            continue
        lines += ["", f"## Survivors in `{t['file']}`", ""]
        for r in surv:
            verdict = r.get("judged") or "NOT JUDGED: a test may be missing"
            if r["status"] == "not covered":
                verdict = "no test of this run executes the line; " + verdict
            lines.append(f"- line {r['line']}: `{r['orig']}` -> `{r['repl'] or '(removed)'}` in "
                         f"`{r['text']}` — {verdict}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated subset of {','.join(TARGETS)}")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "results", "mutation"))
    p.add_argument("--limit", type=int, default=None, help="at most this many mutants per file (a trial run)")
    p.add_argument("--workers", type=int, default=1, help="mutants run side by side (one tree copy each)")
    p.add_argument("--list", action="store_true", help="only list the mutants")
    p.add_argument("--recheck", action="store_true",
                   help="rerun only the survivors of the mutants-*.json in --out (after adding tests)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild report.md from the mutants-*.json in --out with the current JUDGED table")
    p.add_argument("--serve", help=argparse.SUPPRESS)  # internal: the fork server of one target
    p.add_argument("--jobs", help=argparse.SUPPRESS)
    p.add_argument("--results", help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds: a mutant whose tests run longer is killed (timeout)")
    args = p.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.jobs, args.results, args.timeout)
    if args.report_only:
        merged = {"targets": {}}
        for key in TARGETS:
            path = os.path.join(args.out, f"mutants-{key}.json")
            if os.path.exists(path):
                with open(path) as fh:
                    doc = json.load(fh)
                for r in doc["mutants"]:
                    if r and r["status"] in ("survived", "not covered"):
                        r["judged"] = judgement(doc["file"], r["text"], r["orig"], r["repl"])
                merged["targets"][key] = doc
                with open(path, "w") as fh:
                    json.dump(doc, fh, indent=1)
        with open(os.path.join(args.out, "report.md"), "w") as fh:
            fh.write(report(merged))
        return 0
    targets = [t for t in args.targets.split(",") if t]
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        p.error(f"--targets: unknown {', '.join(bad)}; expected some of {','.join(TARGETS)}")
    if args.list:
        for t in targets:
            rel = TARGETS[t][0]
            with open(os.path.join(REPO, rel)) as fh:
                for mt in mutants(fh.read()):
                    print(f"{rel}:{mt['line']}: {mt['orig']!r} -> {mt['repl']!r}   {mt['text']}")
        return 0
    run(targets, args.out, args.timeout, args.limit, args.workers, log=lambda s: print(s, flush=True),
        recheck=args.recheck)
    return 0


if __name__ == "__main__":
    sys.exit(main())
