"""Compile the device featurize kernels for a real GPU (sm_80) without one.

The simulator runs kernels as Python and cannot catch what only the compiler
rejects (typing of bool/uint64 arguments, shifts, mixed integer widths).
Needs libNVVM; skips without it.
"""


def test_featurize_kernels_compile_to_ptx(ptx_target):
    cuda, nt = ptx_target
    import cs_fast.kernels.cuda.featurize as kf

    kernels = kf.kernels()
    A = lambda dt, nd=2: nt.Array(dt, nd, "C")  # noqa: E731
    signatures = [("masks", (A(nt.boolean), A(nt.uint64))),
                  ("count_rows", (A(nt.int32, 1), nt.int64, A(nt.int64, 1))),
                  ("count_within", (A(nt.float64, 1), nt.float64, A(nt.int64, 1)))]
    for dt in (nt.float64, nt.float32):
        signatures += [
            ("boxes", (A(dt), A(nt.float64))),
            ("tv_estimate", (A(dt, 4), A(nt.float64, 3), nt.boolean, A(dt))),
            ("tv_norms", (A(dt), A(nt.float64, 1), A(dt), A(nt.float64))),
            ("lower_median_rows", (A(dt), nt.int64, nt.int64, A(nt.float64, 1))),
            ("flag_rows", (A(dt), nt.boolean, A(nt.int32, 1))),
            ("condense", (A(dt), nt.int64, nt.int64, A(dt, 1))),
        ]
    for name, args in signatures:
        ptx, _ = cuda.compile_ptx(kernels[name].py_func, args, cc=(8, 0))
        assert ".entry" in ptx, name
