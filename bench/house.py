"""Measure the library's structure: import cycles, private names across modules, sizes, string dispatch.

Run ``python bench/house.py`` (add ``--json``) from the repository root. It reads ``cs_fast/`` with
:mod:`ast` only (nothing is imported) and prints

- the strongly connected components of the module import graph (an import cycle is one with more
  than one module);
- every private name (``_x``, not dunder) that one module imports or reads from another module of the
  library (``from .a import _x`` or ``a._x``);
- functions over 150 lines and classes over 250 lines;
- comparisons of a reduction's name with a string literal outside the registry (``reduction == "sq"``,
  ``name in ("l2", "l1")``);
- module-level names of the library that some other module (the library, ``tests/`` or ``bench/``)
  assigns (``prune.SORT = ...``, ``monkeypatch.setattr(prune, "SORT", ...)``): state flipped from outside.

``--walk`` also runs one ``CenterSmoothing.smooth`` per metric on the host (a small model, a fixed
seed) and prints the deepest chain of the library's Python frames that reached a kernel module: the stops
from the smoothing class to the kernel, the files they are in, and how often the chain returns to a file it
had already left (numba's compiled code has no Python frames: the chain ends at the kernel's driver).

``tests/test_house.py`` holds the library to the guides of the design (no cycle, few private names).
"""

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "cs_fast"
FUNCTION_LINES = 150
CLASS_LINES = 250
# Names whose comparison with a string literal is dispatch on a reduction or metric name.
DISPATCH_NAMES = {"reduction", "red", "metric_name", "kind_name"}


def module_name(path, root=ROOT):
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def library_files(root=ROOT):
    return sorted((root / PACKAGE).rglob("*.py"))


def _resolve(current, is_package, level, module):
    """The absolute name of ``from <level dots><module> import ...`` inside module ``current``."""
    if level == 0:
        return module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports(path, modules, root=ROOT):
    """``(target module, imported name or None, line)`` for every import of a library module."""
    tree = ast.parse(path.read_text(), str(path))
    current = module_name(path, root)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.append((alias.name, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(current, is_package, node.level, node.module)
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.append((sub, None, node.lineno))
                else:
                    found.append((base, alias.name, node.lineno))
    return found


def import_graph(root=ROOT):
    files = library_files(root)
    modules = {module_name(p, root) for p in files}
    graph = {}
    for p in files:
        name = module_name(p, root)
        graph[name] = sorted({t for t, _, _ in imports(p, modules, root) if t in modules and t != name})
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_crossings(root=ROOT):
    """``(module, line, target module, private name)`` for each private name one module takes from another."""
    files = library_files(root)
    modules = {module_name(p, root) for p in files}
    out = []
    for p in files:
        current = module_name(p, root)
        tree = ast.parse(p.read_text(), str(p))
        aliases = {}
        for t, name, line in imports(p, modules, root):
            if name is not None and _is_private(name) and t != current:
                out.append((current, line, t, name))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(current, p.name == "__init__.py", node.level, node.module)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:
                        aliases[alias.asname or alias.name] = sub
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _is_private(node.attr)
                and aliases[node.value.id] != current
            ):
                out.append((current, node.lineno, aliases[node.value.id], node.attr))
    return sorted(set(out))


def sizes(root=ROOT):
    """``(kind, qualified name, lines)`` of functions over FUNCTION_LINES and classes over CLASS_LINES."""
    out = []
    for p in library_files(root):
        mod = module_name(p, root)
        tree = ast.parse(p.read_text(), str(p))

        def walk(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    n = child.end_lineno - child.lineno + 1
                    kind = "class" if isinstance(child, ast.ClassDef) else "function"
                    limit = CLASS_LINES if kind == "class" else FUNCTION_LINES
                    qual = f"{prefix}.{child.name}"
                    if n > limit:
                        out.append((kind, qual, n))
                    walk(child, qual)

        walk(tree, mod)
    return sorted(out, key=lambda r: -r[2])


def _name_of(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _strings(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        vals = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        return vals if len(vals) == len(node.elts) else []
    return []


def string_dispatch(root=ROOT, registry=("cs_fast.metrics", "cs_fast.reductions")):
    """``(module, line, source)`` of each comparison of a reduction name with string literals."""
    out = []
    for p in library_files(root):
        mod = module_name(p, root)
        if mod in registry:
            continue
        text = p.read_text()
        tree = ast.parse(text, str(p))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            names = [_name_of(node.left)] + [_name_of(c) for c in node.comparators]
            literals = _strings(node.left) + [s for c in node.comparators for s in _strings(c)]
            if literals and any(n in DISPATCH_NAMES for n in names if n):
                out.append((mod, node.lineno, ast.get_source_segment(text, node)))
    return out


def _module_globals(root=ROOT):
    """``{module: set of UPPER_CASE names assigned at its top level}``."""
    out = {}
    for p in library_files(root):
        tree = ast.parse(p.read_text(), str(p))
        names = set()
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for t in targets:
                if isinstance(t, ast.Name) and t.id.isupper():
                    names.add(t.id)
        out[module_name(p, root)] = names
    return out


def flipped_globals(root=ROOT, places=("cs_fast", "tests", "bench")):
    """``(file, line, module, name)`` where a module's UPPER_CASE global is set from another file."""
    globs = _module_globals(root)
    short = {}
    for mod, names in globs.items():
        short.setdefault(mod.rsplit(".", 1)[-1], []).append(mod)
    out = []
    for place in places:
        for p in sorted((root / place).rglob("*.py")):
            text = p.read_text()
            try:
                tree = ast.parse(text, str(p))
            except SyntaxError:
                continue
            here = module_name(p, root) if place == PACKAGE else str(p.relative_to(root))
            for node in ast.walk(tree):
                hits = []
                if isinstance(node, (ast.Assign, ast.AugAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Attribute) and isinstance(t.value, (ast.Name, ast.Attribute)):
                            hits.append((_name_of(t.value), t.attr))
                elif isinstance(node, ast.Call) and _name_of(node.func) == "setattr" and len(node.args) >= 2:
                    target, attr = node.args[0], node.args[1]
                    if isinstance(attr, ast.Constant) and isinstance(attr.value, str):
                        hits.append((_name_of(target), attr.value))
                for owner, attr in hits:
                    for mod in short.get(owner or "", []):
                        if attr in globs[mod] and mod != here:
                            out.append((here, node.lineno, mod, attr))
    return sorted(set(out))


def measure(root=ROOT):
    graph = import_graph(root)
    return {
        "modules": len(graph),
        "cycles": cycles(graph),
        "private_crossings": [list(r) for r in private_crossings(root)],
        "oversized": [list(r) for r in sizes(root)],
        "string_dispatch": [list(r) for r in string_dispatch(root)],
        "flipped_globals": [list(r) for r in flipped_globals(root)],
    }


def _deepest_chain(fn, root=ROOT):
    """The deepest stack of the library's frames that ends in a kernel module while ``fn()`` runs, outermost first."""
    package = str(root / PACKAGE)
    kernels = str(root / PACKAGE / "kernels")
    best = []

    def profile(frame, event, arg):
        nonlocal best
        if event != "call" or not frame.f_code.co_filename.startswith(kernels):
            return
        chain = []
        f = frame
        while f is not None:
            if f.f_code.co_filename.startswith(package):
                chain.append((str(Path(f.f_code.co_filename).relative_to(root)), f.f_code.co_name))
            f = f.f_back
        if len(chain) > len(best):
            best = chain[::-1]

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return best


def bounces(files):
    """``(stops, files, returns)`` of a chain's files: a return is a step into a file it had already left."""
    returns = sum(1 for i in range(1, len(files)) if files[i] != files[i - 1] and files[i] in files[: i - 1])
    return len(files), len(set(files)), returns


def walks(root=ROOT):
    """One host ``smooth`` per metric: ``{metric: (stops, files, returns, chain)}`` of its deepest chain."""
    import numpy as np

    sys.path.insert(0, str(root))  # this checkout's library, whatever else is installed
    import cs_fast

    inputs = {"jaccard": (lambda x: np.concatenate([x, x + 5.0], axis=1), np.array([1.0, 2.0])),
              "l2": (lambda x: x * 2.0, np.zeros(6)), "l1": (lambda x: x * 2.0, np.zeros(6)),
              "tv": (lambda x: x * 2.0, np.zeros((1, 4, 5))), "sqfeat": (lambda x: x * 2.0, np.zeros(6))}
    out = {}
    for metric, (model, x) in inputs.items():
        sm = cs_fast.CenterSmoothing(model, metric, sigma=0.25, seed=0, backend="cpu")
        sm.smooth(x, n=64)  # compiled and cached: the walk below is the steady state
        chain = _deepest_chain(lambda: sm.smooth(x, n=64), root)
        out[metric] = bounces([f for f, _ in chain]) + (chain,)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the whole measurement as JSON")
    parser.add_argument("--walk", action="store_true", help="also follow one smooth() per metric to its kernel")
    args = parser.parse_args(argv)
    if args.walk:
        for metric, (stops, files, returns, chain) in walks().items():
            print(f"walk {metric}: deepest chain {stops} frames in {files} files, {returns} returns to a file "
                  "already left")
            for f, name in chain:
                print(f"    {f}:{name}")
    m = measure()
    if args.json:
        print(json.dumps(m, indent=1))
        return 0
    print(f"modules: {m['modules']}")
    print(f"import cycles: {len(m['cycles'])}")
    for c in m["cycles"]:
        print("  " + " <-> ".join(c))
    print(f"private names across modules: {len(m['private_crossings'])}")
    for mod, line, target, name in m["private_crossings"]:
        print(f"  {mod}:{line} takes {target}.{name}")
    print(f"oversized units: {len(m['oversized'])}")
    for kind, name, n in m["oversized"]:
        print(f"  {kind} {name}: {n} lines")
    print(f"string tests on reduction names outside the registry: {len(m['string_dispatch'])}")
    for mod, line, src in m["string_dispatch"]:
        print(f"  {mod}:{line} {src}")
    print(f"module globals set from another file: {len(m['flipped_globals'])}")
    for here, line, mod, name in m["flipped_globals"]:
        print(f"  {here}:{line} sets {mod}.{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
