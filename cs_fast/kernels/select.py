"""k-th smallest selection, plain Python compiled by numba (no policy here).

``kth_smallest(buf, k)`` is an in-place quickselect (Hoare partition around a
median-of-three pivot) returning the k-th smallest value, 1-based, of ``buf``.
It reorders ``buf``. Expected O(len(buf)); the median-of-three pivot makes the
sorted and reverse-sorted inputs that distance rows often are cheap.
"""


def kth_smallest(buf, k):
    """Return the ``k``-th smallest (1-based) of ``buf``, reordering ``buf``."""
    lo = 0
    hi = buf.shape[0] - 1
    target = k - 1
    while hi > lo:
        mid = (lo + hi) // 2
        # Median of three moved to buf[mid]; buf[lo] <= buf[mid] <= buf[hi].
        if buf[mid] < buf[lo]:
            buf[mid], buf[lo] = buf[lo], buf[mid]
        if buf[hi] < buf[lo]:
            buf[hi], buf[lo] = buf[lo], buf[hi]
        if buf[hi] < buf[mid]:
            buf[hi], buf[mid] = buf[mid], buf[hi]
        pivot = buf[mid]
        i = lo
        j = hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while pivot < buf[j]:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        # Now buf[lo..j] <= pivot <= buf[i..hi], and entries strictly between are == pivot.
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            return buf[target]
    return buf[target]


def count_below(row, bound):
    """Number of entries of ``row`` that are ``< bound``."""
    c = 0
    for t in range(row.shape[0]):
        if row[t] < bound:
            c += 1
    return c
