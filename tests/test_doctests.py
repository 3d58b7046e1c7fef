"""The Examples sections of the public docstrings run as doctests, and every public object has one.

The public objects are the documentation's: ``cs_fast.__all__`` (the module
``cs_fast.bounds`` counted by its functions) and the public functions of
:mod:`cs_fast.bounds`, as listed by ``docs/_ext/cs_fast_api.py`` (the same list
the docs build holds the API reference to). A class's examples include those
of its public methods and properties, inherited ones too.

Examples may assume ``import numpy as np`` and ``import cs_fast``, as numpy's
and scipy's do; anything else they import themselves. They are compared with
``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``.

``test_every_public_object_has_examples`` fails, listing them all, while some
public function or class has no Examples section.
"""

import doctest
import importlib.util
import inspect
import os
import re

import numpy as np
import pytest

import cs_fast

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("cs_fast_api", os.path.join(REPO, "docs", "_ext", "cs_fast_api.py"))
_api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_api)

PUBLIC = _api.public_objects()
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_EXAMPLES = re.compile(r"^Examples\n-{3,}\s*$", re.MULTILINE)


def has_examples(obj):
    """Whether ``obj``'s own docstring has a numpydoc ``Examples`` section."""
    return bool(_EXAMPLES.search(inspect.getdoc(obj) or ""))


def documented_parts(name, obj):
    """``(name, object)`` of ``obj`` and, for a class, of its public methods and properties (inherited too)."""
    parts = [(name, obj)]
    if inspect.isclass(obj):
        for attr in dir(obj):
            if attr.startswith("_"):
                continue
            owner = next(k for k in obj.__mro__ if attr in vars(k))
            if owner is object:
                continue
            raw = vars(owner)[attr]
            target = raw.fget if isinstance(raw, property) else getattr(raw, "__func__", raw)
            if inspect.isfunction(target):
                parts.append((f"{name}.{attr}", target))
    return parts


def doctests_of(name, obj):
    finder = doctest.DocTestFinder(recurse=False)
    tests = []
    for part_name, part in documented_parts(name, obj):
        globs = {"np": np, "cs_fast": cs_fast}
        tests += [t for t in finder.find(part, part_name, module=inspect.getmodule(part), globs=globs) if t.examples]
    return tests


#: The public objects whose docstrings (their methods' included) hold examples; the others are listed by
#: test_every_public_object_has_examples.
WITH_EXAMPLES = [name for name in sorted(PUBLIC) if doctests_of(name, PUBLIC[name])]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_examples_run(name):
    tests = doctests_of(name, PUBLIC[name])
    failures = []
    for test in tests:
        runner = doctest.DocTestRunner(optionflags=OPTIONS, verbose=False)
        report = []
        runner.run(test, out=report.append)
        if runner.failures:
            failures.append("".join(report))
    assert not failures, "\n".join(failures)


def test_every_public_object_has_examples():
    missing = sorted(name for name, obj in PUBLIC.items() if not has_examples(obj))
    assert not missing, (
        f"{len(missing)} of {len(PUBLIC)} public functions and classes have no numpydoc 'Examples' section "
        "(each should show a call that runs as a doctest):\n  " + "\n  ".join(missing)
    )


def test_public_list_covers_the_namespace():
    """The list the docs and this module check is the namespace itself: nothing public is left out."""
    names = {n for n in cs_fast.__all__ if not inspect.ismodule(getattr(cs_fast, n))}
    assert {n.split(".", 1)[1] for n in PUBLIC if n.count(".") == 1} == names
    assert any(n.startswith("cs_fast.bounds.") for n in PUBLIC)


def test_runner_reports_a_failing_example():
    """A wrong expected output fails: the check is not vacuous."""

    def example():
        """Add.

        Examples
        --------
        >>> 1 + 1
        3
        """

    (test,) = doctest.DocTestFinder().find(example, "example", globs={})
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    runner.run(test, out=lambda text: None)
    assert runner.failures == 1
    assert has_examples(example)
