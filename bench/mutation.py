"""Mutation testing of the certificate code: does a test fail when the code is changed a little?

    python bench/mutation.py [--targets bounds,smoothing,select] [--out bench/results/mutation]
                             [--timeout-factor 4] [--limit N] [--list]

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
CERT_TESTS = ["tests/test_certificate_exact.py", "tests/test_bounds.py", "tests/test_smoothing.py",
              "tests/test_compat.py"]
TARGETS = {
    "bounds": ("cs_fast/bounds.py", CERT_TESTS),
    "smoothing": ("cs_fast/smoothing.py", CERT_TESTS),
    "select": ("cs_fast/kernels/select.py", ["tests/test_min_median.py"] + CERT_TESTS),
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


def run(targets, out_dir, timeout_factor=2.0, limit=None, log=print):
    """Run the mutants of ``targets`` (keys of :data:`TARGETS`); write and return the report."""
    scratch = tempfile.mkdtemp(prefix="cs_fast_mutation_")
    results = {"targets": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)}
    try:
        _copy_tree(scratch)
        base_env = dict(os.environ, PYTHONPATH=scratch, PYTHONDONTWRITEBYTECODE="1")
        base_env.setdefault("NUMBA_NUM_THREADS", "2")
        for key in targets:
            rel, tests = TARGETS[key]
            tests = [t for t in tests if os.path.exists(os.path.join(scratch, t))]
            path = os.path.join(scratch, rel)
            with open(path) as fh:
                original = fh.read()
            # select.py is compiled by numba: a fresh cache per mutant, so no mutant reuses another's machine code.
            fresh_cache = key == "select"
            env = dict(base_env, NUMBA_CACHE_DIR=os.path.join(scratch, "numba_cache_" + key))
            rc, clean_s, output = _run_tests(scratch, tests, None, env)
            if rc != 0:
                raise RuntimeError(f"{key}: the tests fail on the unmutated code:\n{output[-3000:]}")
            timeout = max(60.0, timeout_factor * clean_s)
            log(f"{key}: clean run {clean_s:.1f} s over {tests}; timeout {timeout:.0f} s")
            uncovered = set()
            if not fresh_cache:  # numba-compiled code runs no Python lines: no trace for select.py
                with open(os.path.join(scratch, "_mutation_trace.py"), "w") as fh:
                    fh.write(_TRACE_PLUGIN)
                trace_out = os.path.join(scratch, f"trace_{key}.json")
                tenv = dict(env, MUTATION_TRACE_FILE=path, MUTATION_TRACE_OUT=trace_out)
                rc, _, output = _run_tests(scratch, tests, None, tenv, extra=["-p", "_mutation_trace"])
                if rc != 0:
                    raise RuntimeError(f"{key}: the traced clean run failed:\n{output[-3000:]}")
                with open(trace_out) as fh:
                    uncovered = _function_lines(original) - set(json.load(fh))
            found = mutants(original)[:limit]
            rows = []
            for i, mt in enumerate(found):
                if mt["line"] in uncovered:
                    row = {k: mt[k] for k in ("line", "col", "orig", "repl", "text")}
                    row.update(status="not covered", seconds=0.0, killed_by=None,
                               judged=JUDGED.get((rel, mt["text"], mt["orig"], mt["repl"])))
                    rows.append(row)
                    continue
                with open(path, "w") as fh:
                    fh.write(mt["source"])
                menv = env
                if fresh_cache:
                    menv = dict(env, NUMBA_CACHE_DIR=os.path.join(scratch, f"numba_cache_{key}_{i}"))
                try:
                    rc, secs, output = _run_tests(scratch, tests, timeout, menv)
                finally:
                    with open(path, "w") as fh:
                        fh.write(original)
                    if fresh_cache:
                        shutil.rmtree(menv["NUMBA_CACHE_DIR"], ignore_errors=True)
                status = "survived" if rc == 0 else ("timeout" if rc == "timeout" else "killed")
                row = {k: mt[k] for k in ("line", "col", "orig", "repl", "text")}
                row.update(status=status, seconds=round(secs, 1),
                           killed_by=_first_failure(output) if status == "killed" else None)
                if status == "survived":
                    row["judged"] = JUDGED.get((rel, mt["text"], mt["orig"], mt["repl"]))
                rows.append(row)
                log(f"  [{i + 1}/{len(found)}] {rel}:{mt['line']} {mt['orig']!r} -> {mt['repl']!r}: {status}"
                    f" ({secs:.1f} s)")
            results["targets"][key] = {"file": rel, "tests": tests, "clean_run_s": round(clean_s, 1),
                                       "mutants": rows}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "mutants.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    with open(os.path.join(out_dir, "report.md"), "w") as fh:
        fh.write(report(results))
    return results


def report(results):
    """The markdown summary: counts per file, then every survivor with its judgement."""
    lines = ["# Mutation testing of the certificate code", "",
             f"Command: `python bench/mutation.py --targets {','.join(results['targets'])}` "
             f"(started {results['started']}, finished {results['finished']}).", "",
             "| file | mutants | killed | timeout | survived: judged | survived: not judged | "
             "on lines no test runs | tests |",
             "|---|---|---|---|---|---|---|---|"]
    for key, t in results["targets"].items():
        rows = t["mutants"]
        count = {s: sum(r["status"] == s for r in rows) for s in ("killed", "timeout", "survived", "not covered")}
        judged = sum(1 for r in rows if r["status"] == "survived" and r.get("judged"))
        lines.append(f"| `{t['file']}` | {len(rows)} | {count['killed']} | {count['timeout']} | {judged} | "
                     f"{count['survived'] - judged} | {count['not covered']} | {', '.join(t['tests'])} |")
    for key, t in results["targets"].items():
        surv = [r for r in t["mutants"] if r["status"] in ("survived", "not covered")]
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
    run(targets, args.out, args.timeout_factor, args.limit, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
