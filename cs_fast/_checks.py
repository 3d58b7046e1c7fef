"""Input checks shared by every entry point.

Every error names the argument, what was received and what was expected.
"""

import numbers

import numpy as np


def describe(x):
    """Short description of an array-like for error messages."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"{type(x).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__}"


def real_dtype(dtype, name):
    """The dtype :func:`check_real_dtype` converts ``dtype`` to, or the TypeError it raises.

    Needs only the dtype, so device arrays are checked with the same words.
    """
    dtype = np.dtype(dtype)
    kind = dtype.kind
    if kind == "f":
        if dtype == np.float16:
            return np.dtype(np.float32)
        if dtype in (np.float32, np.float64):
            return dtype
    elif kind in "iub":
        return np.dtype(np.float64)
    raise TypeError(
        f"{name}: received dtype {dtype}; expected a real floating-point "
        "(float32 or float64), integer or boolean array"
    )


def check_real_dtype(arr, name):
    """Accept float32/float64; integers and bools widen to float64, float16 to float32.

    Both widenings are exact, as in ``scipy.spatial.distance``; anything else
    (complex, object, strings) is a TypeError.
    """
    dtype = real_dtype(arr.dtype, name)
    return arr if arr.dtype == dtype else arr.astype(dtype)


def nonfinite_rows_error(name, count, n, first):
    """The error for ``count`` of ``n`` rows holding NaN or inf (host and device checks share it)."""
    return ValueError(
        f"{name}: {count} of {n} rows contain NaN or inf "
        f"(first at row {first}); expected finite values"
    )


def check_finite(arr, name):
    """Raise if any row (first axis) of ``arr`` holds NaN or inf."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return
    bad_rows = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
    count = int(bad_rows.sum())
    if count:
        raise nonfinite_rows_error(name, count, arr.shape[0], int(np.flatnonzero(bad_rows)[0]))


def check_int(value, name, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: received {value!r} ({type(value).__name__}); expected an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}: received {value}; expected an integer >= {minimum}")
    return int(value)


def check_real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: received {value!r} ({type(value).__name__}); expected a real number")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: received {value}; expected a finite number")
    return value


def check_open_interval(value, name, low, high):
    """A finite real strictly between ``low`` and ``high``."""
    value = check_real(value, name)
    if not low < value < high:
        raise ValueError(f"{name}: received {value}; expected a value in the open interval ({low}, {high})")
    return value


def check_positive(value, name):
    value = check_real(value, name)
    if value <= 0:
        raise ValueError(f"{name}: received {value}; expected a value > 0")
    return value


def check_nonnegative(value, name):
    value = check_real(value, name)
    if value < 0:
        raise ValueError(f"{name}: received {value}; expected a value >= 0")
    return value
