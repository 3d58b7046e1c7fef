"""Imports point downward only: the library ``cs_fast`` never imports the applications ``cs_fast_apps``.

The applications (the ``cs-fast`` command, demo, audit, sweeps, benchmark report) live in
``cs_fast_apps`` above the library, so that ``import cs_fast`` loads the library alone.
"""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
APPS = "cs_fast_apps"


def _imported_modules(source, package):
    """``(line, module)`` of every import in ``source``, relative ones resolved against ``package`` (a list).

    Module names in string constants count too (``importlib.import_module("...")``, ``"module:callable"``).
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield node.lineno, module
            for alias in node.names:  # from cs_fast import x: x may itself be a module
                yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            head = node.value.split(":")[0]
            if head and all(part.isidentifier() for part in head.split(".")):
                yield node.lineno, head


def _upward(module):
    return module == APPS or module.startswith(APPS + ".")


def test_the_library_never_imports_the_applications():
    files = sorted((ROOT / "cs_fast").rglob("*.py"))
    assert files, "cs_fast/ not found"
    upward = [f"{p.relative_to(ROOT)}:{line} imports {module}" for p in files
              for line, module in _imported_modules(p.read_text(encoding="utf-8"),
                                                    list(p.relative_to(ROOT).parts[:-1]))
              if _upward(module)]
    assert upward == [], "the library imports the applications:\n" + "\n".join(upward)


def test_the_check_sees_every_form_of_an_upward_import():
    for text in ("import cs_fast_apps.cli\n", "from cs_fast_apps import cli\n", "from cs_fast_apps.cli import main\n",
                 "import importlib\nimportlib.import_module('cs_fast_apps.demo')\n",
                 "SPEC = 'cs_fast_apps.cli:main'\n"):
        assert any(_upward(m) for _, m in _imported_modules(text, ["cs_fast", "models"])), text
    for text in ("from .. import smoothing\n", "from . import digits\n", "import cs_fast.bounds\n"):
        assert not any(_upward(m) for _, m in _imported_modules(text, ["cs_fast", "models"])), text
    assert {m for _, m in _imported_modules("from ..bounds import plan\n", ["cs_fast", "models"])} == {
        "cs_fast.bounds", "cs_fast.bounds.plan"}


def test_import_cs_fast_loads_no_application_module():
    code = "import sys, cs_fast\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'cs_fast_apps'))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
