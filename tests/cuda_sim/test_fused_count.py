"""The fused counting pass of the device min_median and the shared-memory radix select.

``min_median`` (fused, the default) must return the same ``(index, radius)``
bit for bit as the unfused path (every distance row written, every row
selected) and as brute force on the device's own distance matrix, for every
reduction and dtype, whatever the seeds, the tiles and the ties. The select's
shared-memory candidates must be exactly the global candidates (none dropped,
none duplicated). Sizes are small (a Python thread per CUDA thread) but cross
tile boundaries; ``DeviceConfig.seed_rows`` is lowered so that small n are
seeded too. The unfused reference is ``tests/cuda_sim/unfused.py``.
"""

import dataclasses

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from conftest import make_samples  # noqa: E402  (tests/conftest.py)

from cs_fast.kernels.cpu import distances  # noqa: E402
from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.kernels.cuda import count as fused_count  # noqa: E402
from cs_fast.kernels.cuda import radix, runtime  # noqa: E402
from cuda_sim.unfused import min_median as unfused_min_median  # noqa: E402  (tests/cuda_sim/unfused.py)
from cs_fast.metrics import Features, check_metric_params, get_metric, prepare_pair, reduction_for  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in scalar multiply:RuntimeWarning")

# One case per device reduction (box, mask, l1, grouped_l2, sq, l2, angular).
REDUCTIONS = [
    ("jaccard", {}, None),
    ("jaccard_mask", {}, (70,)),
    ("tv", {}, (2, 3, 4)),
    ("tv", {"channel_norm": 2}, (2, 3, 4)),
    ("sqfeat", {}, (9,)),
    ("l2", {}, (6,)),
    ("angular", {}, (6,)),
]


def _ids(case):
    metric, params, shape = case
    return metric + ("-l2" if params else "")


def _features(metric, X, params=None):
    """(reduction, features) the device count reads: tv's are its centred estimate features (l1 or grouped l2)."""
    m = get_metric(metric)
    params = check_metric_params(m, params or {})
    A, _ = prepare_pair(m, X, X, params)
    if m.name == "tv":
        est = m.estimate(A, params)
        return est.reduction, Features(est.data, est.arg)
    F = m.featurize(A, params)
    return reduction_for(m, F), F


def _brute(D):
    k = (len(D) + 1) // 2
    med = np.sort(D, axis=1)[:, k - 1]
    i = int(np.argmin(med))  # first index among ties
    return i, float(med[i])


def _device_brute(red, dF, arg):
    return _brute(ck.pairwise(red, dF, dF, arg, np.float64).copy_to_host())


# Seed the best from 3 random rows from n = 6 on (production: 64 rows from n = 128), and check for the
# count's early exit after every column tile (production: every 4).
FEW_SEEDS = ck.DeviceConfig(seed_rows=3, count_check_tiles=1)


def seeds(*rows):
    return np.array(rows, dtype=np.int64)


@pytest.mark.parametrize("case, dtype", [(c, dt) for c in REDUCTIONS for dt in (np.float64, np.float32)
                                          if not (c[0] == "jaccard_mask" and dt == np.float32)],  # masks: one dtype
                         ids=lambda v: _ids(v) if isinstance(v, tuple) else np.dtype(v).name)
def test_fused_is_unfused_and_brute_force_bit_for_bit(case, dtype):
    metric, params, shape = case
    rng = np.random.default_rng(31)
    X = make_samples(metric, rng, 13, dtype, shape)
    X[9] = X[2]  # a duplicate row: equal medians, the smaller index wins
    red, F = _features(metric, X, params)
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    stats = {}
    got = ck.min_median(red, dF, F.arg, tile=5, stats=stats, config=FEW_SEEDS)  # 3 tiles
    assert got == want
    assert unfused_min_median(red, dF, F.arg, tile=5) == want
    assert stats["seeds"] == 3
    if not red.box:
        assert stats["survivors"] < 13  # D written only for rows that could still win
    # the same center as the CPU driver, the radius to its last few ulps (float32 rows: the CPU's
    # float32 kernels round their sums to float32)
    host = distances.min_median(red, F.data, F.arg, 13)
    rel = 1e-12 if dtype == np.float64 or str(red) in ("box", "mask") else 2e-6
    assert got[0] == host[0] and got[1] == pytest.approx(host[1], rel=rel, abs=1e-13)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8])
@pytest.mark.parametrize("metric", ["tv", "angular"])
def test_small_n_odd_and_even_with_one_row_tiles(metric, n):
    rng = np.random.default_rng(32 + n)
    X = make_samples(metric, rng, n, np.float64, (2, 3) if metric == "tv" else (4,))
    red, F = _features(metric, X)
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    assert ck.min_median(red, dF, F.arg) == want
    row_bytes = 8 * (n + 1)
    assert ck.min_median(red, dF, F.arg, max_memory=row_bytes) == want  # n tiles of one row


def test_many_tiles_from_a_small_max_memory():
    rng = np.random.default_rng(33)
    X = rng.standard_normal((11, 5))
    red, F = _features("l1", X)
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    assert ck.min_median(red, dF, F.arg, max_memory=2 * 8 * 12, config=FEW_SEEDS) == want  # 6 tiles of 2 rows


@pytest.mark.parametrize("metric, shape", [("tv", (2, 3)), ("jaccard_mask", (9,)), ("angular", (4,))])
def test_seeded_best_with_a_larger_index_than_the_winner(metric, shape):
    """Rows are copies of three rows: the winning copy with the smallest index must win, though the
    best is seeded with its last copy (so earlier copies must be counted with <= the best)."""
    rng = np.random.default_rng(34)
    base = make_samples(metric, rng, 3, np.float64, shape)
    if metric == "jaccard_mask":
        base[0] = rng.random(shape) < 0.5  # make_samples empties row 0
    group = np.array([1, 2, 0, 1, 0, 2, 0, 1, 0, 0, 2, 0])
    X = base[group]
    red, F = _features(metric, X)
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    winners = np.flatnonzero(group == group[want[0]])
    assert want[0] == winners[0] and len(winners) > 1  # a tie, broken by the index
    last = seeds(winners[-1])
    assert ck.min_median(red, dF, F.arg, seeds=last) == want
    assert ck.min_median(red, dF, F.arg, tile=4, seeds=last) == want
    assert ck.min_median(red, dF, F.arg, tile=1, seeds=last) == want
    assert ck.min_median(red, dF, F.arg, tile=4, seeds=seeds(winners[0])) == want  # the winner itself as the seed


@pytest.mark.parametrize("fill", [False, True])
def test_saturated_masks_and_all_equal_rows(fill):
    """Every distance 0 (all-full or all-empty masks, equal rows): every median ties, row 0 wins
    (seeded with the last row)."""
    masks = np.full((7, 3, 30), fill)
    red, F = _features("jaccard_mask", masks)
    assert ck.min_median(red, cuda.to_device(F.data), F.arg, tile=3, seeds=seeds(6)) == (0, 0.0)
    X = np.tile(np.arange(6.0), (8, 1))
    red, F = _features("tv", X)
    assert ck.min_median(red, cuda.to_device(F.data), F.arg, tile=3, seeds=seeds(7)) == (0, 0.0)


def test_early_exit_keeps_a_winner_that_needs_every_column_left():
    """The winner (row 6) has none of its k = 5 smallest distances in the first column tile (4 columns
    under the simulator) and all of them in the 5 columns left: at the first check its count plus the
    columns left is exactly k, so it must stay open (an off-by-one there prunes it)."""
    X = np.array([[100.0], [101.0], [102.0], [103.0], [0.0], [0.1], [0.2], [0.3], [0.4]])
    red, F = _features("l1", X)
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    assert want[0] == 6
    assert ck.min_median(red, dF, F.arg, seeds=seeds(5), config=FEW_SEEDS) == want


# The box count checks for a decided row after every sweep of its block (4 columns under the
# simulator; production: every 8 sweeps).
BOX_CHECKS = ck.DeviceConfig(box_check_sweeps=1)


def test_box_early_exit_keeps_a_winner_that_needs_every_column_left():
    """Boxes: rows 0-3 are disjoint from everything (distance 1), rows 4-8 nested boxes of widths 10.0
    to 10.4; the winner (row 6) has all k = 5 of its smallest distances in the 5 columns after the first
    sweep of 4: count + columns left is exactly k at the first check, so it must stay open (an
    off-by-one prunes it and the seed, row 5, is returned)."""
    far = [[100.0 + 3 * q, 100.0, 101.0 + 3 * q, 101.0] for q in range(4)]
    near = [[0.0, 0.0, 10.0 + w, 10.0] for w in (0.0, 0.1, 0.2, 0.3, 0.4)]
    X = np.array(far + near)
    red, F = _features("jaccard", X)
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    assert want[0] == 6
    assert ck.min_median(red, dF, F.arg, seeds=seeds(5), config=BOX_CHECKS) == want


@pytest.mark.parametrize("seed", [0, 1])
def test_box_early_exit_matches_brute_force_over_many_checks(seed):
    """40 boxes (ten checks a row), some copies and some empty boxes: the same (index, radius)."""
    rng = np.random.default_rng(43 + seed)
    X = make_samples("jaccard", rng, 40, np.float64, None)
    X[30:34] = X[7]
    X[12] = X[25]
    red, F = _features("jaccard", X)
    dF = cuda.to_device(F.data)
    config = dataclasses.replace(FEW_SEEDS, box_check_sweeps=1)
    assert ck.min_median(red, dF, F.arg, tile=16, config=config) == _device_brute(red, dF, F.arg)


def test_seeds_and_pruning_do_not_depend_on_row_order():
    rng = np.random.default_rng(35)
    X = rng.standard_normal((14, 4))
    order = np.argsort(-np.abs(X).sum(1))  # the center last: an unseeded pass would prune little
    X = X[order]
    red, F = _features("l2", X)
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    stats = {}
    assert ck.min_median(red, dF, F.arg, tile=4, stats=stats, config=FEW_SEEDS) == want
    assert stats["survivors"] <= 10


# --------------------------------------------------------------------------- shared-memory select


# Kernels with an 8-key shared buffer, so short test rows take the shared path (and few seeds).
SMALL_BUFFER = dataclasses.replace(FEW_SEEDS, shared_keys=8)


def _select_all(rows):
    """Every order statistic of every row through select_slots: (values, global passes)."""
    select_slots = radix.row_select(SMALL_BUFFER.shared_keys).select_slots
    R = np.ascontiguousarray(rows, dtype=np.float64)
    r, n = R.shape
    dK = cuda.to_device(R.view(np.uint64))
    slots = cuda.to_device(np.arange(r, dtype=np.int64))
    count = cuda.to_device(np.array([r], dtype=np.int64))
    nbits, sign, full, _ = runtime.key_params(np.dtype(np.float64))
    values = np.empty((r, n))
    reads = np.empty((r, n), dtype=np.int32)
    for k in range(1, n + 1):
        med = cuda.to_device(np.full(r, np.nan))
        passes = cuda.to_device(np.zeros(r, dtype=np.int32))
        select_slots[r, 4](dK, slots, count, 0, k, nbits, sign, full, med.view(np.uint64), passes)
        values[:, k - 1] = med.copy_to_host()
        reads[:, k - 1] = passes.copy_to_host()
    return values, reads


def test_shared_candidates_are_exactly_the_global_ones():
    """Every rank of rows whose candidates fit 8 keys after 0, 2 or 3 passes, or never do.

    Dropping or duplicating a candidate moves some rank onto the wrong value."""
    rng = np.random.default_rng(36)
    crowded = 1.0 + rng.integers(0, 1024, 24) / 1024.0  # [1, 2) on a 2**-10 grid: pass 2 splits them
    crowded[:9] = 1.5  # 9 equal keys: their candidates never drop to 8 (all 8 passes global)
    crowded[9:13] = crowded[20]  # more duplicates beside distinct values
    rows = np.stack([crowded, rng.permutation(crowded), -crowded + 0.25])  # negative keys too
    values, reads = _select_all(rows)
    np.testing.assert_array_equal(values, np.sort(rows, axis=1))
    assert reads.max() == 8  # the 9-fold tie: never compacted
    assert reads.min() <= 3  # ranks whose candidates fit after at most 3 passes: shared from then on
    short = rng.standard_normal((2, 7))
    short[1, 3:] = short[1, 0]
    values, reads = _select_all(short)
    np.testing.assert_array_equal(values, np.sort(short, axis=1))
    assert (reads == 1).all()  # 7 keys fit at once: one global pass, then shared memory


def test_min_median_with_a_small_shared_buffer():
    rng = np.random.default_rng(37)
    X = np.round(rng.standard_normal((17, 3)), 1)  # short sums: many equal distances
    for metric in ("l1", "jaccard"):
        if metric == "jaccard":
            X = np.abs(X)
            X = np.concatenate([X[:, :2], X[:, :2] + X[:, 1:3] + 0.5], axis=1)
        red, F = _features(metric, X)
        dF = cuda.to_device(F.data)
        want = _device_brute(red, dF, F.arg)
        assert ck.min_median(red, dF, F.arg, tile=6, config=SMALL_BUFFER) == want
        assert unfused_min_median(red, dF, F.arg, tile=6, config=SMALL_BUFFER) == want


# --------------------------------------------------------------------------- production block sizes


@pytest.fixture
def production():
    """The GPU's block sizes: 16 x 16 count blocks, 32..256-thread selects, the 2048-key buffer."""
    with ck.block_sizes(small=False):
        yield


@pytest.mark.slow
@pytest.mark.parametrize("metric, shape, dtype", [("tv", (3, 7), np.float32), ("angular", (5,), np.float64)])
def test_fused_count_at_production_blocks(production, metric, shape, dtype):
    """16 x 16 count blocks (two row blocks, three column tiles, an early-exit check after each; tv's 32
    features: two 16-feature chunks)."""
    rng = np.random.default_rng(38)
    X = make_samples(metric, rng, 40, dtype, shape)
    X[33] = X[5]
    red, F = _features(metric, X)
    assert fused_count.kernels(red, config=FEW_SEEDS).T == 16
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    stats = {}
    assert ck.min_median(red, dF, F.arg, tile=24, stats=stats, config=FEW_SEEDS) == want
    assert stats["seeds"] == 3 and stats["survivors"] < 40


def _tiled_l1_host(F, T):
    """The device's float64 l1 matrix bit for bit: |a - b| exact in float64 (float32 inputs), summed
    in T-feature chunks from 0.0, chunk sums added in order (the tiled kernel's order)."""
    F = F.astype(np.float64)
    total = np.zeros((len(F), len(F)))
    for k0 in range(0, F.shape[1], T):
        chunk = np.zeros_like(total)
        for k in range(k0, min(F.shape[1], k0 + T)):
            chunk += np.abs(F[:, None, k] - F[None, :, k])
        total += chunk
    return total


@pytest.mark.slow
def test_blocked_count_at_production_blocks(production, monkeypatch):
    """The register-blocked float32 count at the GPU's sizes: 16 x 16 threads, 64-row blocks, 64-column
    tiles with an early-exit check after each (three row blocks, three column tiles; 40 features: a
    float32 flush after 32 and a rest). Two groups of copies: ties across blocks and tiles."""
    rng = np.random.default_rng(42)
    X = rng.standard_normal((150, 5, 8)).astype(np.float32)
    X[140] = X[3]
    X[70] = X[3]
    X[20:30] = X[100]
    red, F = _features("tv", X)
    assert fused_count.kernels(red, config=FEW_SEEDS).count_blocked[1:] == (64, 16)
    dF = cuda.to_device(F.data)
    # Brute force on the host with the device's float64 sums (a full device matrix at 16 x 16 blocks
    # costs minutes under the simulator); the replica is checked against the device on 20 rows.
    D = _tiled_l1_host(F.data, 16)
    head = cuda.to_device(F.data[:20])
    np.testing.assert_array_equal(ck.pairwise(red, head, head, F.arg, np.float64).copy_to_host(), D[:20, :20])
    want = _brute(D)
    # Seeded with the runner-up (the survivors' selects at 256 threads are what costs under the
    # simulator): the winner must survive the count, every other row be pruned by it.
    med = np.sort(D, axis=1)[:, (len(D) - 1) // 2]
    runner_up = int(np.lexsort((np.arange(len(D)), med))[1])
    launched = _spy_launches(monkeypatch)
    stats = {}
    assert ck.min_median(red, dF, F.arg, stats=stats, seeds=seeds(runner_up), config=FEW_SEEDS) == want
    assert fused_count.kernels(red, config=FEW_SEEDS).count_blocked[0] in launched
    assert stats["survivors"] == 1  # only the winner precedes the runner-up (ties: by index)


# --------------------------------------------------------------------------- float32 l1 count


def _count32_decisions(F, D, slot, config=ck.DEFAULT):
    """For every row i and the bounds b = its smallest non-self distance and the next float up:
    (decided by the float32 count: the row has >= 2 distances < b, exact: the same from D).
    ``slot`` 3: the one-pair-a-thread count; 4: the register-blocked one."""
    kernels = fused_count.kernels("l1", config=config)
    kernel, rows, threads = (kernels.count_rows32, 1, kernels.T) if slot == 3 else kernels.count_blocked
    dF = cuda.to_device(F)
    got, want = [], []
    for i in range(len(F)):
        lowest = np.min(np.delete(D[i], i))
        for b in (lowest, np.nextafter(lowest, np.inf)):
            nsurv = cuda.to_device(np.zeros(1, dtype=np.int64))
            kernel[1, (threads, threads)](dF, i, 1, 0, 2, cuda.to_device(np.array([b])),
                                          cuda.to_device(np.array([-1])), cuda.to_device(np.zeros(1, dtype=np.int64)),
                                          nsurv, cuda.to_device(np.zeros(1)))
            got.append(nsurv.copy_to_host()[0] == 1)
            want.append(int((D[i] < b).sum()) >= 2)
    return np.array(got), np.array(want)


@pytest.mark.slow
@pytest.mark.parametrize("slot", [3, 4], ids=["one-pair-a-thread", "register-blocked"])
def test_float32_l1_count_decides_as_float64_at_the_boundary(slot):
    """Bounds exactly at a distance and one float above it: the float32 count with its margin decides
    every row as the float64 distances do; with no margin some decisions are wrong (the float32 sums
    round differently), so the margin is what makes it exact."""
    rng = np.random.default_rng(39)
    F = rng.standard_normal((12, 70)).astype(np.float32)  # 70 features: two float32 flushes and a rest
    D = ck.pairwise("l1", cuda.to_device(F), cuda.to_device(F), 0, np.float64).copy_to_host()
    got, want = _count32_decisions(F, D, slot)
    np.testing.assert_array_equal(got, want)
    no_margin = ck.DeviceConfig(l1_count_margin=0.0, l1_count_tiny=0.0)
    got, want = _count32_decisions(F, D, slot, no_margin)
    assert (got != want).sum() > 0


def test_blocked_count_needs_its_error_bound_inside_the_margin(monkeypatch):
    """A flush cadence whose float32 error bound exceeds the margin leaves the blocked count unused; the
    one-pair-a-thread float32 count then decides, with the same answer."""
    assert fused_count.kernels("l1").blocked_fits  # the default build's bound fits the margin
    long_flush = dataclasses.replace(FEW_SEEDS, flush=2 ** 17)  # bound ~ 2**-7
    kernels = fused_count.kernels("l1", config=long_flush)
    assert not kernels.blocked_fits
    launched = _spy_launches(monkeypatch)
    X = np.random.default_rng(41).standard_normal((10, 2, 5)).astype(np.float32)
    red, F = _features("tv", X)
    dF = cuda.to_device(F.data)
    assert ck.min_median(red, dF, F.arg, tile=4, config=long_flush) == _device_brute(red, dF, F.arg)
    assert kernels.count_rows32 in launched and kernels.count_blocked[0] not in launched


def test_blocked_count_keeps_a_winner_that_needs_every_column_left(monkeypatch):
    """float32 rows, so the register-blocked count decides (8-row tiles under the simulator): the first
    column tile holds 8 far rows, the winner (row 12) has all k = 9 of its smallest distances in the 9
    columns left. At the first check its count plus the columns left is exactly k: it must stay open (an
    off-by-one prunes it and row 11 wins with the seed's median)."""
    X = np.concatenate([100.0 + np.arange(8), 0.1 * np.arange(9)]).astype(np.float32)[:, None]
    red, F = _features("l1", X)
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    assert want[0] == 12
    launched = _spy_launches(monkeypatch)
    assert ck.min_median(red, dF, F.arg, seeds=seeds(13), config=FEW_SEEDS) == want
    assert fused_count.kernels("l1", config=FEW_SEEDS).count_blocked[0] in launched


def _spy_launches(monkeypatch):
    """The kernels runtime.launch is called with, in order (the launches themselves still run)."""
    launched = []
    real = runtime.launch

    def spy(kernel, grid, block):
        launched.append(kernel)
        return real(kernel, grid, block)

    monkeypatch.setattr(runtime, "launch", spy)
    return launched


@pytest.mark.parametrize("float32_count, blocked", [(True, True), (True, False), (False, True)])
def test_tv_float32_rows_with_and_without_the_float32_count(monkeypatch, float32_count, blocked):
    config = dataclasses.replace(FEW_SEEDS, l1_float32_count=float32_count, l1_blocked_count=blocked)
    launched = _spy_launches(monkeypatch)
    rng = np.random.default_rng(40)
    X = rng.standard_normal((15, 3, 4)).astype(np.float32)
    X[11] = X[4]
    X[7] = X[4]
    red, F = _features("tv", X)
    assert F.data.dtype == np.float32 and str(red) == "l1"
    dF = cuda.to_device(F.data)
    want = _device_brute(red, dF, F.arg)
    assert ck.min_median(red, dF, F.arg, tile=6, config=config) == want
    assert ck.min_median(red, dF, F.arg, tile=6, seeds=seeds(11), config=config) == want
    kernels = fused_count.kernels(red, config=config)
    want_kernel = ((kernels.count_blocked[0] if blocked else kernels.count_rows32) if float32_count
                   else kernels.count_rows)
    assert want_kernel in launched
    others = (kernels.count_rows, kernels.count_rows32, kernels.count_blocked[0])
    assert not {k for k in others if k is not want_kernel} & set(launched)
