"""Certificates per second on the demo workload, in-process and on Ray, with CPU-seconds per process.

The demo's workload (the digits autoencoder certified in TV, n = 4000, m = 20 000 per input,
eps1 = 0.5, sigma = 0.25) on the first ``--inputs`` held-out digits, five ways in one run (on a
machine with c cores; c = 2 here):

- in-process with 1 and with c threads: ``CenterSmoothing(..., seed=input_seed(seed, i)).certify``
  one input after the other;
- Ray through ``cs_fast.distributed.certify_many`` on a warm ``WorkerPool``: 1 worker x 1 thread
  (the per-worker baseline of the scaling), 1 worker x c threads (the Ray counterpart of
  in-process with c threads) and c workers x 1 thread.

Every row certifies the same inputs with warm workers (model loaded, kernels compiled, outside the
timing), so rows compare the same work. The rows run in rounds, the order reversed every other
round so that a drift of the machine's load hits every row alike; each row reports its best and
median round. Beside the wall time, the CPU-seconds per input of every process (read from /proc:
the driver, each Ray worker, and Ray's own processes: gcs_server, raylet, dashboard and agents, log
monitor, autoscaler monitor) are recorded for each measurement: they survive a loaded machine far
better than wall time (except for spinning threads, which is why OpenMP runs passive here, in the
workers and in-process alike, ``--omp-wait-policy``).

Checks that every way gives the same certificates, and writes ``results.json``, ``table.txt`` and
``readme_table.md`` (the table and ratios as the README shows them).
Run it on an idle machine:

    python bench/distributed_throughput.py --inputs 24 --rounds 3 --out bench/results/distributed-amd-epyc
"""

import argparse
import json
import os
import time

TICKS = os.sysconf("SC_CLK_TCK")


def _model_factory():
    from cs_fast.models.digits import load_digits_autoencoder

    return load_digits_autoencoder().eval()


def _process_tree(root):
    """pid -> (group, command, CPU-seconds) of ``root`` and all its descendants, from /proc."""
    info, children = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        pid, ppid = int(entry), int(fields[1])
        seconds = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, every thread
        info[pid] = (command or stat[stat.index("(") + 1:stat.rindex(")")], seconds)
        children.setdefault(ppid, []).append(pid)
    tree, stack = {}, [root]
    while stack:
        pid = stack.pop()
        if pid in info:
            command, seconds = info[pid]
            group = "driver" if pid == root else "workers" if command.startswith("ray::_Worker") else "ray"
            tree[pid] = (group, command[:80], seconds)
        stack.extend(children.get(pid, []))
    return tree


def _cpu_delta(before, after):
    """CPU-seconds spent between two snapshots, by group and by process (processes new in ``after`` from 0)."""
    groups, processes = {"driver": 0.0, "workers": 0.0, "ray": 0.0}, {}
    for pid, (group, command, seconds) in after.items():
        spent = seconds - before.get(pid, (group, command, 0.0))[2]
        groups[group] += spent
        if spent >= 0.005:
            processes[f"{pid} {command}"] = round(spent, 3)
    return groups, processes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=24, help="held-out digits to certify (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every row (default: %(default)s)")
    parser.add_argument("--n", type=int, default=4000, help="default: %(default)s (the demo's)")
    parser.add_argument("--m", type=int, default=20_000, help="default: %(default)s (the demo's)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default: %(default)s)")
    parser.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE"],
                        help="OpenMP wait policy of this process and of the workers (default: %(default)s, "
                             "what cs_fast.distributed gives its workers)")
    parser.add_argument("--out", required=True, help="results directory")
    parser.add_argument("--from-json", metavar="RESULTS_JSON",
                        help="measure nothing: recompute the table and ratios of an earlier results.json")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            _report(json.load(f), args.out)
        return 0
    # Read by OpenMP when torch and numba load it: set before importing them. The workers inherit it.
    os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy

    import numba
    import numpy as np
    import torch

    import cs_fast
    from cs_fast import distributed
    from cs_fast_apps.bench.measure import load_status
    from cs_fast.distributed import WorkerPool, certify_many, input_seed
    from cs_fast.models.digits import digits_data

    cores = os.cpu_count()
    count = args.inputs
    images = digits_data("test")[:count]
    params = dict(metric="tv", sigma=0.25, eps1=0.5, n=args.n, m=args.m)
    me = os.getpid()
    before = load_status(threads_used=cores)

    model = _model_factory()

    def in_process(threads):
        torch.set_num_threads(threads)
        numba.set_num_threads(threads)
        cs_fast.CenterSmoothing(model, "tv", 0.25, seed=1).certify(images[0], 0.5, n=500, m=1000)  # warm
        snap = _process_tree(me)
        t0 = time.perf_counter()
        certs = {i: cs_fast.CenterSmoothing(model, "tv", 0.25, seed=input_seed(args.seed, i)).certify(
            images[i], 0.5, n=args.n, m=args.m).to_dict() for i in range(count)}
        return time.perf_counter() - t0, _cpu_delta(snap, _process_tree(me)), certs, None

    def on_ray(workers, threads):
        t0 = time.perf_counter()
        with WorkerPool(_model_factory, workers=workers, threads=threads) as pool:
            list(certify_many(pool, images[:workers], metric="tv", sigma=0.25, eps1=0.5, n=500, m=1000, seed=1))
            warm = time.perf_counter() - t0
            snap = _process_tree(me)
            t0 = time.perf_counter()
            certs = {i: c.to_dict() for i, c in certify_many(pool, images, seed=args.seed, **params)}
            seconds = time.perf_counter() - t0
            cpu = _cpu_delta(snap, _process_tree(me))  # before the pool stops: its workers are still there
            described = pool.describe()
        return seconds, cpu, certs, {"pool_start_and_warm_seconds": warm, "workers": described}

    rows = [("in-process", 1, 1), ("in-process", 1, cores), ("ray", 1, 1), ("ray", 1, cores), ("ray", cores, 1)]
    name = {r: (f"in-process {r[2]} thread{'s' if r[2] > 1 else ''}" if r[0] == "in-process"
                else f"ray {r[1]} worker{'s' if r[1] > 1 else ''} x {r[2]} thread{'s' if r[2] > 1 else ''}")
            for r in rows}

    t0 = time.perf_counter()
    cluster = distributed._Cluster(None, cores)  # the embedded Ray certify_many starts, started once here
    startup = time.perf_counter() - t0
    runs = {name[r]: [] for r in rows}
    certificates = {}
    try:
        for round_ in range(args.rounds):
            for row in (rows if round_ % 2 == 0 else rows[::-1]):
                load = os.getloadavg()
                kind, workers, threads = row
                seconds, (groups, processes), certs, extra = (in_process(threads) if kind == "in-process"
                                                              else on_ray(workers, threads))
                certificates.setdefault(name[row], certs)
                runs[name[row]].append(dict(
                    round=round_, seconds=seconds, seconds_per_input=seconds / count,
                    cpu_seconds_per_input={k: v / count for k, v in groups.items()},
                    cpu_seconds_per_input_total=sum(groups.values()) / count, cpu_by_process=processes,
                    load_average_before=list(load), load_average_after=list(os.getloadavg()),
                    same_as_first_round=certs == certificates[name[row]], **(extra or {})))
                print(f"round {round_} {name[row]:<28} {seconds / count:.3f} s/input, "
                      f"CPU-s/input {sum(groups.values()) / count:.3f} "
                      f"({', '.join(f'{k} {v / count:.3f}' for k, v in groups.items())}); load {load[0]:.2f}",
                      flush=True)
    finally:
        cluster.close()

    reference = {t: certificates[name[("in-process", 1, t)]] for t in {1, cores}}
    measured = {"inputs": count, "params": params, "cores": cores, "rounds": args.rounds,
                "omp_wait_policy": args.omp_wait_policy, "ray_startup_seconds": startup,
                "local_system_config": distributed.LOCAL_SYSTEM_CONFIG,
                "row_names": [[name[r], *r] for r in rows], "runs": runs,
                "same_as_in_process": {name[r]: certificates[name[r]] == reference[r[2]] for r in rows},
                "same_certificates_across_thread_counts": reference[1] == reference[cores],
                "machine_before": before, "machine_after": load_status(threads_used=cores)}
    _report(measured, args.out)
    return 0


def _report(measured, out):
    """Summary rows, ratios and targets of ``measured``; writes results.json (measured and derived) and table.txt."""
    import numpy as np

    runs, cores, count = measured["runs"], measured["cores"], measured["inputs"]
    name = {tuple(r[1:]): r[0] for r in measured["row_names"]}
    rows = list(name)
    summary = {}
    for row in rows:
        rs = runs[name[row]]
        wall = sorted(r["seconds_per_input"] for r in rs)
        best = min(rs, key=lambda r: r["seconds_per_input"])
        middle = sorted(rs, key=lambda r: r["cpu_seconds_per_input_total"])[(len(rs) - 1) // 2]
        summary[name[row]] = {
            "workers": row[1], "threads": row[2], "best_seconds_per_input": wall[0],
            "median_seconds_per_input": float(np.median(wall)),
            "best_certificates_per_second": 1.0 / wall[0],
            "cpu_seconds_per_input_of_median_round": middle["cpu_seconds_per_input"],
            "median_cpu_seconds_per_input_total": middle["cpu_seconds_per_input_total"],
            "load_average_of_best": best["load_average_before"]}
    for row in rows:
        summary[name[row]]["same_as_in_process"] = measured["same_as_in_process"][name[row]]
    same_across_threads = measured["same_certificates_across_thread_counts"]
    startup = measured["ray_startup_seconds"]
    before, after = measured["machine_before"], measured["machine_after"]

    def wall(key):
        return summary[key]["best_seconds_per_input"]

    def cpu(key):
        # In-process: its own process only (Ray is up in the background of this run, not of a user's).
        if key.startswith("in-process"):
            return summary[key]["cpu_seconds_per_input_of_median_round"]["driver"]
        return summary[key]["median_cpu_seconds_per_input_total"]

    ip1, ipc = name[("in-process", 1, 1)], name[("in-process", 1, cores)]
    r11, r1c, rc1 = name[("ray", 1, 1)], name[("ray", 1, cores)], name[("ray", cores, 1)]
    ratios = {
        f"Ray overhead, wall: ({r1c}) / ({ipc}) - 1": wall(r1c) / wall(ipc) - 1,
        f"Ray overhead, wall: ({r11}) / ({ip1}) - 1": wall(r11) / wall(ip1) - 1,
        f"Ray overhead, CPU-s: ({r1c}) / ({ipc}) - 1": cpu(r1c) / cpu(ipc) - 1,
        f"Ray overhead, CPU-s: ({r11}) / ({ip1}) - 1": cpu(r11) / cpu(ip1) - 1,
        f"scaling per worker: ({rc1}) over ({r11})": wall(r11) / wall(rc1),
        # Not a wall-time measurement: the rate c workers would reach if each had a core to itself,
        # from the CPU-seconds each input costs them (survives a loaded machine; ignores idle waits).
        f"scaling per worker, bound from CPU-seconds: {cores} / CPU-s({rc1}) over 1 / CPU-s({r11})":
            cores * cpu(r11) / cpu(rc1),
        f"scaling over the 1-worker default: ({rc1}) over ({r1c})": wall(r1c) / wall(rc1),
        f"({rc1}) over ({ipc})": wall(ipc) / wall(rc1),
        f"threads in-process: ({ipc}) over ({ip1})": wall(ip1) / wall(ipc),
    }
    targets = [
        ("Ray overhead per input < 5 % (1 worker x all threads vs in-process, wall)",
         ratios[f"Ray overhead, wall: ({r1c}) / ({ipc}) - 1"] < 0.05),
        ("Ray overhead per input < 5 % (1 worker x 1 thread vs in-process 1 thread, wall)",
         ratios[f"Ray overhead, wall: ({r11}) / ({ip1}) - 1"] < 0.05),
        (f"{cores} workers >= 1.7x 1 worker (per-worker baseline, 1 worker x 1 thread)",
         ratios[f"scaling per worker: ({rc1}) over ({r11})"] >= 1.7),
        (f"{cores} workers >= 1.7x 1 worker (1 worker x {cores} threads, the default 1-worker run)",
         ratios[f"scaling over the 1-worker default: ({rc1}) over ({r1c})"] >= 1.7),
    ]
    result = dict(measured, rows=summary, ratios=ratios, targets={t: ok for t, ok in targets})
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)

    params = measured["params"]
    lines = [f"{count} inputs, digits autoencoder in tv, n = {params['n']}, m = {params['m']}, {cores} cores, "
             f"{measured['rounds']} rounds, OMP_WAIT_POLICY={measured['omp_wait_policy']}",
             f"{'how':<28} {'best s/in':>9} {'med s/in':>9} {'certs/s':>8} {'CPU-s/in':>9} "
             f"{'driver':>7} {'workers':>7} {'ray':>6} {'same':>5}"]
    for row in rows:
        s = summary[name[row]]
        c = s["cpu_seconds_per_input_of_median_round"]
        lines.append(f"{name[row]:<28} {s['best_seconds_per_input']:>9.3f} {s['median_seconds_per_input']:>9.3f} "
                     f"{s['best_certificates_per_second']:>8.3f} {sum(c.values()):>9.3f} {c['driver']:>7.3f} "
                     f"{c['workers']:>7.3f} {c['ray']:>6.3f} {str(s['same_as_in_process']):>5}")
    lines.append("s/in: wall seconds per input over all inputs, warm workers (best and median round); CPU-s/in: "
                 "CPU-seconds per input (the round with the median total), split into the driver process, the Ray "
                 "workers and Ray's own processes (Ray is up throughout, so in-process rows show its idle cost; the CPU "
                 "ratios count only the driver for them); same: "
                 "certificates equal to in-process at the same thread count")
    lines += [f"{k}: {v:+.1%}" if "overhead" in k else f"{k}: {v:.2f}x" for k, v in ratios.items()]
    lines += [f"target {'met' if ok else 'MISSED'}: {t}" for t, ok in targets]
    lines.append(f"same certificates with 1 and {cores} threads: {same_across_threads}; Ray start-up "
                 f"{startup:.1f} s, a pool's start and warm-up "
                 f"{np.median([r['pool_start_and_warm_seconds'] for k in (r11, r1c, rc1) for r in runs[k]]):.1f} s "
                 "(median; in no row)")
    lines.append(f"load average before: {before.get('load_average')}, after: {after.get('load_average')}")
    with open(os.path.join(out, "table.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # The same figures as the README section "Certifying a dataset on a cluster" shows them.
    md = ["| how | workers × threads | best s / input | median s / input | CPU-s / input: driver + workers + "
          "Ray's processes | same certificates |", "|---|---|---|---|---|---|"]
    for row in rows:
        s = summary[name[row]]
        c = s["cpu_seconds_per_input_of_median_round"]
        md.append(f"| {'in-process' if row[0] == 'in-process' else 'Ray'} | {row[1]} × {row[2]} | "
                  f"{s['best_seconds_per_input']:.3f} | {s['median_seconds_per_input']:.3f} | {c['driver']:.3f} + "
                  f"{c['workers']:.3f} + {c['ray']:.3f} = {sum(c.values()):.3f} | "
                  f"{'yes, bit for bit' if s['same_as_in_process'] else 'NO'} |")
    md += [""] + [f"- {k}: {v:+.1%}" if "overhead" in k else f"- {k}: {v:.2f}×" for k, v in ratios.items()]
    md += [""] + [f"- target {'**met**' if ok else '**missed**'}: {t}" for t, ok in targets]
    loads = [r["load_average_before"][0] for rs in runs.values() for r in rs]
    md += ["", f"Load average at the rows' starts: {min(loads):.1f} to {max(loads):.1f} on {cores} cores."]
    with open(os.path.join(out, "readme_table.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
