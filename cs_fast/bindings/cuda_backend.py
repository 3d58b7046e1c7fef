"""Availability of the CUDA backend, with errors that say what is missing."""


def cuda_problem():
    """Return None when a usable GPU is present, else a sentence saying what is missing."""
    try:
        from numba import cuda
    except ImportError:
        return "numba-cuda is not installed (pip install -e '.[cuda]' in the cs_fast clone, or: pip install numba-cuda)"
    try:
        if not cuda.is_available():
            return "numba-cuda found no usable GPU (no NVIDIA driver or no device)"
    except Exception as err:  # driver probing raises a variety of errors
        return f"numba-cuda could not initialise the CUDA driver ({err})"
    return None


def require_cuda():
    problem = cuda_problem()
    if problem is not None:
        raise RuntimeError(f"backend='cuda' is not usable here: {problem}")
