"""Mutation testing of the certificate code: does a test fail when the code is changed a little?

    python bench/mutation.py [--targets bounds,smoothing,select] [--out bench/results/mutation]
                             [--workers 1] [--timeout-factor 2] [--limit N] [--list]

A small, self-contained mutation tool (mutmut and cosmic-ray rewrite functions
into trampolines that numba cannot compile, and ``select.py`` is compiled by
numba). It copies the working tree once to a scratch folder, and for every
mutant of a target file writes the mutated file there, runs the target's tests
(``pytest -x``, stop at the first failure), and restores the file:

* killed: a test failed (or the run errored, or it timed out: more than
  ``--timeout-factor`` (2) times the clean run);
* survived: every test passed. Survivors are listed with their line for a
  reviewer to judge: *equivalent* (no behaviour changes), *validation only*
  (an input check, not a certificate quantity), or a missing test.

Mutation operators, on the token stream (strings, docstrings and comments are
never touched, nor lines marked ``# no mutate``): comparison flips (``<`` and
``<=``, ``>`` and ``>=``, ``==`` and ``!=``), arithmetic swaps (``+``/``-``,
``*``/``/``, ``//``/``/``, ``+=``/``-=``), number constants ``c -> c + 1``
(and ``1 -> 0``), ``min``/``max``, ``ceil``/``floor``, ``True``/``False``,
``and``/``or``, and dropping a ``not``.

Not a CI step: it takes tens of minutes (numba recompiles the kernels for
every ``select.py`` mutant). Writes ``report.md`` and ``mutants.json`` into
``--out``; survivors listed in :data:`JUDGED` are reported with the reason
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

# The certificate tests: every quantity of a certificate recomputed independently, the bounds, the
# smoother; the selection kernels also by brute-force parity of min_median.
# The fastest, most pointed tests first: pytest -x stops at the first failure.
CERT_TESTS = ["tests/test_certificate_exact.py", "tests/test_bounds.py", "tests/test_smoothing.py"]
TARGETS = {
    "bounds": ("cs_fast/bounds.py", CERT_TESTS),
    "smoothing": ("cs_fast/smoothing.py", CERT_TESTS),
    # The brute-force parity of min_median at small n (the large-n cases take minutes per mutant).
    "select": ("cs_fast/kernels/select.py",
               ["tests/test_min_median.py", "-k", "not across_tile_boundaries"] + CERT_TESTS),
}

SWAP_OPS = {"<": ["<="], "<=": ["<"], ">": [">="], ">=": [">"], "==": ["!="], "!=": ["=="],
            "+": ["-"], "-": ["+"], "*": ["/"], "/": ["*"], "//": ["/"], "+=": ["-="], "-=": ["+="]}
SWAP_NAMES = {"min": "max", "max": "min", "ceil": "floor", "floor": "ceil", "True": "False",
              "False": "True", "and": "or", "or": "and"}

# Survivors judged by a reviewer: (file, line text stripped, original token, replacement) -> reason.
# A survivor matches on the line's text, so the judgement survives edits elsewhere in the file.
JUDGED = {}


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


# A pytest plugin that records the lines of one file the tests execute (the clean run only): mutants on
# lines no test runs are reported as "not covered" without running them.
_TRACE_PLUGIN = """
import json, os, sys, threading
_FILE = os.environ["MUTATION_TRACE_FILE"]
_LINES = set()
def _local(frame, event, arg):
    if event == "line":
        _LINES.add(frame.f_lineno)
    return _local
def _global(frame, event, arg):
    if frame.f_code.co_filename == _FILE:
        _LINES.add(frame.f_lineno)
        return _local
    return None
def pytest_configure(config):
    sys.settrace(_global)
    threading.settrace(_global)
def pytest_unconfigure(config):
    sys.settrace(None)
    with open(os.environ["MUTATION_TRACE_OUT"], "w") as fh:
        json.dump(sorted(_LINES), fh)
"""


def _function_lines(source):
    """Line numbers inside function bodies (module-level lines run at import and are always covered)."""
    import ast

    inside = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0].lineno
            inside.update(range(first, node.end_lineno + 1))
    return inside


def _run_tests(tree, tests, timeout, env, extra=()):
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *extra, *tests]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0, ""
    return proc.returncode, time.perf_counter() - t0, proc.stdout


def _first_failure(output):
    for line in output.splitlines():
        if line.startswith(("FAILED", "ERROR")):
            return line[:200]
    return output.strip().splitlines()[-1][:200] if output.strip() else ""


def _copy_tree(dst):
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis",
                                    "results", "cs_fast_*_*", "*.egg-info")
    for name in ("cs_fast", "tests", "bench"):
        shutil.copytree(os.path.join(REPO, name), os.path.join(dst, name), ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml", "conftest.py", "pytest.ini"):
        if os.path.exists(os.path.join(REPO, name)):
            shutil.copy2(os.path.join(REPO, name), dst)


def _row(mt, **extra):
    row = {k: mt[k] for k in ("line", "col", "orig", "repl", "text")}
    row.update(extra)
    return row


def _write(results, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "mutants.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    with open(os.path.join(out_dir, "report.md"), "w") as fh:
        fh.write(report(results))


def run(targets, out_dir, timeout_factor=2.0, limit=None, workers=1, log=print):
    """Run the mutants of ``targets`` (keys of :data:`TARGETS`); write the report as it goes and return it.

    ``workers`` scratch copies of the tree run mutants side by side (one file per
    copy is mutated at a time). ``report.md`` and ``mutants.json`` are rewritten
    after every mutant, so an interrupted run still leaves its partial report.
    """
    import queue
    from concurrent.futures import ThreadPoolExecutor

    trees = [tempfile.mkdtemp(prefix="cs_fast_mutation_") for _ in range(max(1, workers))]
    results = {"targets": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": None,
               "command": "python bench/mutation.py " + " ".join(sys.argv[1:])}
    try:
        for tree in trees:
            _copy_tree(tree)
        for key in targets:
            rel, tests = TARGETS[key]
            tests = [t for t in tests if t.startswith("-") or os.path.exists(os.path.join(trees[0], t))]

            def env_for(tree):
                env = dict(os.environ, PYTHONPATH=tree, PYTHONDONTWRITEBYTECODE="1",
                           NUMBA_CACHE_DIR=os.path.join(tree, "numba_cache"))
                env.setdefault("NUMBA_NUM_THREADS", "2")
                return env

            with open(os.path.join(trees[0], rel)) as fh:
                original = fh.read()
            rc, clean_s, output = _run_tests(trees[0], tests, None, env_for(trees[0]))
            if rc != 0:
                raise RuntimeError(f"{key}: the tests fail on the unmutated code:\n{output[-3000:]}")
            timeout = max(60.0, timeout_factor * clean_s)
            log(f"{key}: clean run {clean_s:.1f} s over {tests}; timeout {timeout:.0f} s")
            uncovered = set()
            if key != "select":  # numba-compiled code runs no Python lines: no trace for select.py
                with open(os.path.join(trees[0], "_mutation_trace.py"), "w") as fh:
                    fh.write(_TRACE_PLUGIN)
                trace_out = os.path.join(trees[0], f"trace_{key}.json")
                tenv = dict(env_for(trees[0]), MUTATION_TRACE_FILE=os.path.join(trees[0], rel),
                            MUTATION_TRACE_OUT=trace_out)
                rc, _, output = _run_tests(trees[0], tests, None, tenv, extra=["-p", "_mutation_trace"])
                if rc != 0:
                    raise RuntimeError(f"{key}: the traced clean run failed:\n{output[-3000:]}")
                with open(trace_out) as fh:
                    uncovered = _function_lines(original) - set(json.load(fh))
            found = mutants(original)[:limit]
            rows = [None] * len(found)
            results["targets"][key] = {"file": rel, "tests": tests, "clean_run_s": round(clean_s, 1),
                                       "mutants": rows}
            free = queue.Queue()
            for tree in trees:
                free.put(tree)

            def one(i, mt):
                judged = JUDGED.get((rel, mt["text"], mt["orig"], mt["repl"]))
                if mt["line"] in uncovered:
                    return _row(mt, status="not covered", seconds=0.0, killed_by=None, judged=judged)
                tree = free.get()
                path = os.path.join(tree, rel)
                try:
                    with open(path, "w") as fh:
                        fh.write(mt["source"])
                    rc, secs, output = _run_tests(tree, tests, timeout, env_for(tree))
                finally:
                    with open(path, "w") as fh:
                        fh.write(original)
                    free.put(tree)
                status = "survived" if rc == 0 else ("timeout" if rc == "timeout" else "killed")
                return _row(mt, status=status, seconds=round(secs, 1),
                            killed_by=_first_failure(output) if status == "killed" else None,
                            judged=judged if status == "survived" else None)

            with ThreadPoolExecutor(len(trees)) as pool:
                futures = [pool.submit(one, i, mt) for i, mt in enumerate(found)]
                for i, fut in enumerate(futures):
                    rows[i] = fut.result()
                    mt = found[i]
                    log(f"  [{i + 1}/{len(found)}] {rel}:{mt['line']} {mt['orig']!r} -> {mt['repl']!r}: "
                        f"{rows[i]['status']} ({rows[i]['seconds']:.1f} s)")
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
             f"Command: `python bench/mutation.py --targets {','.join(results['targets'])}` "
             f"(started {results['started']}, "
             + (f"finished {results['finished']})." if results["finished"] else "still running: partial counts).")
             + " A mutant is killed when a test fails, errors or runs past the timeout.", "",
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
    p.add_argument("--timeout-factor", type=float, default=2.0,
                   help="a mutant whose tests run this many times longer than the clean run is killed (timeout)")
    p.add_argument("--limit", type=int, default=None, help="at most this many mutants per file (a trial run)")
    p.add_argument("--workers", type=int, default=1, help="mutants run side by side (one tree copy each)")
    p.add_argument("--list", action="store_true", help="only list the mutants")
    args = p.parse_args(argv)
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
    run(targets, args.out, args.timeout_factor, args.limit, args.workers, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
