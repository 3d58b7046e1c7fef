"""How the CPU kernels are compiled: once per machine, then loaded from numba's on-disk cache.

Compiling the CPU kernels takes seconds; loading them from numba's cache
(``cache=True``) takes milliseconds. numba can cache a function when it is a
plain function of a file (no closure over compiled functions: numba keys the
cache on the pickled closure cells, and a compiled function pickles
differently in every process), so the CPU kernels follow three rules:

* every kernel is decorated with :func:`kernel` (``numba.njit(cache=True)``);
* the drivers that are generic over a pair function are plain templates that
  call it by a global name; :func:`specialize` gives each reduction its own
  copy of the template with that name bound (like :mod:`.retarget` does for
  the pair functions) and a name of its own, so each reduction has its own
  cache entry;
* numba checks only the source of the cached function's own file for
  staleness, not the files of the functions it calls (``pair.py``,
  ``select.py``, ``features.py``, ``mixed_precision.py`` are compiled into
  the kernels of ``cpu.py``).
  :func:`kernel` therefore puts a fingerprint of those sources into every
  kernel's name, which names its cache file: editing them compiles anew
  instead of loading stale code.

numba finds the cache directory itself: ``__pycache__`` beside the source
when writable, else the user-wide cache (``~/.cache/numba``), or
``NUMBA_CACHE_DIR`` when set. Where none is writable the kernels are compiled
on every run, as before, rather than failing.

Nothing compiles at import. The first compile in a process is announced
once, as a warning of the ``cs_fast`` logger (visible without any logging
setup), because the first call can take tens of seconds;
:func:`cs_fast.warmup` compiles ahead of time. :func:`on_first_compile` lets
other callers hook the same moment.
"""

import hashlib
import logging
import os
import types

import numba

from .. import features, mixed_precision, pair, select

_DEPENDENCIES = (pair, select, features, mixed_precision)
#: The cs_fast package directory (with a trailing separator): compile events of functions whose
#: source lies under it are cs_fast's own.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def fingerprint(modules=_DEPENDENCIES):
    """Short hash of the modules' source files ('' if one cannot be read: then nothing is cached)."""
    h = hashlib.sha256()
    for module in modules:
        try:
            with open(module.__file__, "rb") as f:
                h.update(f.read())
        except (OSError, TypeError):
            return ""
    return h.hexdigest()[:12]


FINGERPRINT = fingerprint()


def _rename(func, name, namespace=None):
    clone = types.FunctionType(func.__code__, func.__globals__ if namespace is None else namespace,
                               name, func.__defaults__, func.__closure__)
    clone.__qualname__ = name
    clone.__doc__ = func.__doc__
    clone.__module__ = func.__module__
    return clone


def kernel(depends=(), **options):
    """``numba.njit(cache=True, **options)`` for a CPU kernel, cache entry named by :data:`FINGERPRINT`.

    The compiled function keeps its module's globals (they are read when it
    first compiles) and its Python name; only the name numba files its cache
    under carries the fingerprint. ``depends``: further modules whose kernels
    it inlines (e.g. ``cpu`` for :mod:`.prune`), added to the fingerprint.
    """
    stamp = fingerprint(_DEPENDENCIES + tuple(depends)) if depends else FINGERPRINT

    def decorate(func):
        if not stamp:
            return numba.njit(**options)(func)
        clone = _rename(func, f"{func.__name__}__{stamp}")
        try:
            dispatcher = numba.njit(cache=True, **options)(clone)
        except RuntimeError:  # no writable cache directory anywhere: compile every run
            dispatcher = numba.njit(**options)(func)
        return dispatcher

    return decorate


def specialize(template, suffix, options, **bindings):
    """Compile ``template`` with ``bindings`` added to its globals, cached under ``<name>_<suffix>`` (leading underscores dropped).

    ``template`` is a plain function that calls, e.g., ``pair_fn`` by its
    global name; ``specialize(template, "box", opts, pair_fn=K.box_pair)``
    is that driver for boxes. The suffix keeps each binding's cache entry
    apart: numba's cache key does not see globals.
    """
    namespace = dict(template.__globals__)
    namespace.update(bindings)
    return kernel(**options)(_rename(template, f"{template.__name__.lstrip('_')}_{suffix}", namespace))


def on_first_compile(callback):
    """Call ``callback()`` once, when numba first starts compiling a cs_fast CPU kernel in this process.

    Cache hits compile nothing and do not call it. Returns the listener
    (``numba.core.event.unregister("numba:compile", listener)`` removes it).
    """
    from numba.core import event

    class _Once(event.Listener):
        fired = False

        def on_start(self, ev):
            if self.fired:
                return
            dispatcher = ev.data.get("dispatcher")
            if "cuda" in type(dispatcher).__module__:
                return  # device kernels are compiled per process (no disk cache): not announced
            py_func = getattr(dispatcher, "py_func", None)
            filename = getattr(getattr(py_func, "__code__", None), "co_filename", "")
            if filename.startswith(PACKAGE_DIR):
                self.fired = True
                callback()

        def on_end(self, ev):
            pass

    listener = _Once()
    event.register("numba:compile", listener)
    return listener


#: What the ``cs_fast`` logger says when a process first compiles a cs_fast kernel.
COMPILE_NOTICE = ("cs_fast: compiling the numba kernels for this machine (once: later runs load them from "
                  "numba's cache; cs_fast.warmup() compiles ahead of time)")


def announce():
    logging.getLogger("cs_fast").warning(COMPILE_NOTICE)


_NOTICE = on_first_compile(announce)
