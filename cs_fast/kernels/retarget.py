"""Compile a module of plain-Python kernels for one numba target.

The scalar/row kernels in :mod:`cs_fast.kernels.pair` and
:mod:`cs_fast.kernels.select` call each other by their global names. numba
resolves globals when it compiles, so compiling each function in place would
leave the callees as plain Python. :func:`retarget` rebinds every function of
the modules to a fresh shared namespace in which each name is the compiled
version for the chosen target (``numba.njit`` for the CPU,
``numba.cuda.jit(device=True)`` for the GPU). One definition, two targets.
Compilation itself stays lazy: nothing compiles until first call.
"""

import builtins
import types
from types import SimpleNamespace


def retarget(modules, decorate):
    """Return a namespace of ``decorate``-compiled copies of the modules' functions."""
    namespace = {"__builtins__": builtins}
    plain = {}
    for module in modules:
        for key, value in vars(module).items():
            if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
                plain[key] = value
            elif not key.startswith("__"):
                namespace.setdefault(key, value)
    for key, func in plain.items():
        clone = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__)
        clone.__doc__ = func.__doc__
        namespace[key] = decorate(clone)
    return SimpleNamespace(**{key: namespace[key] for key in plain})
