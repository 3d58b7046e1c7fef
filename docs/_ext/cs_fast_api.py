"""Keep the API reference complete: every public name must appear in an ``autosummary`` of ``api.rst``.

The public names are ``cs_fast.__all__`` (modules excepted: ``cs_fast.bounds``
is listed by its functions) and the public functions defined in
:mod:`cs_fast.bounds`. :func:`public_objects` is shared with
``tests/test_doctests.py``, which runs their Examples. A name missing from the
reference is a warning, so ``sphinx-build -W`` fails until it is placed in one
of the page's groups. Likewise every field of :class:`cs_fast.Certificate`
(and its derived ``to_dict`` keys) must be described on ``certificate.rst``.

numpydoc reports a docstring it cannot parse (an unknown section header, a
malformed parameter list) as a Python ``UserWarning``, which Sphinx's ``-W``
does not see; they are forwarded to Sphinx's log as warnings, so such a
docstring fails the build instead of rendering wrongly.
"""

import importlib
import inspect
import os
import re
import warnings


def _logger():
    # Imported here: tests/test_doctests.py imports this module for public_objects() where Sphinx is not installed.
    from sphinx.util import logging

    return logging.getLogger(__name__)

#: The page that groups the public names, relative to the docs folder.
API_PAGE = "api.rst"
#: The page that describes every field of a certificate.
FIELDS_PAGE = "certificate.rst"


def public_objects():
    """``{qualified name: object}`` of the public API: ``cs_fast.__all__`` and :mod:`cs_fast.bounds`'s functions."""
    cs_fast = importlib.import_module("cs_fast")
    out = {}
    for name in cs_fast.__all__:
        obj = getattr(cs_fast, name)
        if inspect.ismodule(obj):
            continue
        out[f"cs_fast.{name}"] = obj
    bounds = importlib.import_module("cs_fast.bounds")
    for name, obj in vars(bounds).items():
        if name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != bounds.__name__:
            continue
        out[f"cs_fast.bounds.{name}"] = obj
    return out


def listed_names(text):
    """Fully qualified names listed in the ``autosummary`` directives of ``text`` (after ``currentmodule``)."""
    names = set()
    module = ""
    in_summary = False
    for line in text.splitlines():
        current = re.match(r"\.\. (?:currentmodule|module):: (\S+)", line.strip())
        if current:
            module = current.group(1)
            in_summary = False
            continue
        if line.startswith(".. autosummary::"):
            in_summary = True
            continue
        if in_summary:
            entry = line.strip()
            if not entry or entry.startswith(":"):
                continue
            if not line.startswith((" ", "\t")):
                in_summary = False
                continue
            names.add(entry if entry.startswith(module + ".") or not module else f"{module}.{entry}")
    return names


def check_api_page(app):
    path = os.path.join(app.srcdir, API_PAGE)
    with open(path, encoding="utf-8") as f:
        listed = listed_names(f.read())
    for name in sorted(set(public_objects()) - listed):
        _logger().warning("%s is public but not in the API reference: add it to an autosummary group of docs/%s",
                       name, API_PAGE, location=API_PAGE)


def certificate_fields():
    """The keys of ``Certificate.to_dict()``: its dataclass fields and the derived ones."""
    import dataclasses

    cert = importlib.import_module("cs_fast").Certificate
    return [f.name for f in dataclasses.fields(cert)] + list(getattr(cert, "_DERIVED", ()))


def check_fields_page(app):
    with open(os.path.join(app.srcdir, FIELDS_PAGE), encoding="utf-8") as f:
        text = f.read()
    for name in certificate_fields():
        if f"``{name}``" not in text:
            _logger().warning("Certificate field %r is not described on docs/%s (add it to the tables of fields)",
                           name, FIELDS_PAGE, location=FIELDS_PAGE)


def forward_numpydoc_warnings():
    """Send numpydoc's Python warnings to Sphinx's log (once per message), where ``-W`` counts them."""
    warnings.filterwarnings("always", category=UserWarning, module=r"numpydoc\.")
    previous = warnings.showwarning
    seen = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if f"{os.sep}numpydoc{os.sep}" not in filename:
            return previous(message, category, filename, lineno, file, line)
        if str(message) not in seen:
            seen.add(str(message))
            _logger().warning("numpydoc: %s", message)

    warnings.showwarning = show


def setup(app):
    forward_numpydoc_warnings()
    app.connect("builder-inited", check_api_page)
    app.connect("builder-inited", check_fields_page)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
