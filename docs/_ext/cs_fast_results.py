"""Directives that render the committed measurements under ``bench/results/`` at every build.

``.. cs-fast-results:: PATH``
    One result set (a file or folder, relative to ``bench/results``): its
    figures as tables, or its text report as the program wrote it, with the
    command that regenerates it (from ``bench/regenerate.py``) and the machine
    and load the files record.
``.. cs-fast-results-index::``
    Every entry of ``bench/results`` with its regeneration command.
``.. cs-fast-not-faster:: PATH``
    The rows of a ``cs-fast bench`` results file where a peer was faster,
    as ``bench/not_faster.py`` lists them.
``.. cs-fast-gpu-measured::``
    Every measured GPU folder (``bench/results/gpu-<device>/`` written by
    ``bench/gpu_session.sh``), or a sentence saying there is none.

Nothing is measured here and no number is typed into the pages: the figures
are read from the committed files, so the pages change when the files do.
The GPU performance model (``gpu-model``) is rendered inside a box titled as
an estimate; it is never mixed with measured figures.
"""

import importlib.util
import json
import os

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(REPO, "bench", "results")
RESULTS_REL = "bench/results"


# --------------------------------------------------------------------------- helpers

def esc(value):
    """``value`` as reStructuredText text: inline markup characters escaped."""
    text = str(value)
    for ch in "\\*`|_[]":
        text = text.replace(ch, "\\" + ch)
    return text


def lit(value):
    """``value`` as an inline literal."""
    text = str(value).replace("``", "` `")
    return f"``{text}``" if text else ""


def fmt_s(seconds):
    """Seconds with units a reader takes in at once (3 significant digits)."""
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def fmt(value, digits=3):
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def load_avg(value):
    if value is None:
        return "not recorded"
    if isinstance(value, (list, tuple)):
        return ", ".join(f"{v:.2f}" for v in value)
    return f"{value:.2f}"


def table(header, rows, title=None, widths=None):
    """A ``list-table`` directive; cells are reStructuredText (escape plain text with :func:`esc`)."""
    out = [f".. list-table:: {title}" if title else ".. list-table::", "   :header-rows: 1", ""]
    if widths:
        out[1:1] = [f"   :widths: {' '.join(map(str, widths))}"]
    for row in [header] + rows:
        out.append(f"   * - {row[0] if row[0] != '' else ' '}")
        for cell in row[1:]:
            out.append(f"     - {cell if cell != '' else ' '}")
    return out + [""]


def literal(text):
    return [".. code-block:: none", ""] + ["   " + line if line else "" for line in text.rstrip().splitlines()] + [""]


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def machine_line(meta):
    """One sentence from a results file's ``machine``/``meta`` record."""
    if not meta:
        return None
    parts = [f"{meta.get('cpu', '?')}, {meta.get('cores', '?')} cores"]
    if meta.get("total_memory_bytes"):
        parts.append(f"{meta['total_memory_bytes'] / 2**30:.0f} GiB")
    versions = [f"{k} {meta[k]}" for k in ("python", "numpy", "scipy", "numba", "torch", "sklearn") if meta.get(k)]
    threads = [f"{k.replace('_threads', '')} {meta[k]}" for k in ("numba_threads", "torch_threads") if k in meta]
    line = "; ".join(parts + [", ".join(versions)])
    if threads:
        line += "; threads: " + ", ".join(threads)
    return line


# --------------------------------------------------------------------------- regeneration commands

def bench_script(name):
    """The module ``bench/<name>.py``, imported from its file (``bench`` is not a package)."""
    spec = importlib.util.spec_from_file_location(f"cs_fast_docs_{name}", os.path.join(REPO, "bench", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def regenerate_sets():
    """``bench/regenerate.py``'s SETS: ``{name: (what, argv)}`` (read from the script itself)."""
    return bench_script("regenerate").SETS


def regenerate_outputs():
    """``{output path relative to bench/results: (set name, what, shell command)}``."""
    out = {}
    for name, (what, argv) in regenerate_sets().items():
        if "--out" not in argv:
            continue
        target = argv[argv.index("--out") + 1]
        words = ["python"] + [w.replace("{threads}", "N") for w in argv]
        rel = os.path.relpath(target, RESULTS_REL).replace(os.sep, "/")
        out[rel] = (name, what, " ".join(words))
    return out


def provenance(rel):
    """A sentence naming the command that regenerates ``rel`` (or the closest set that writes into it)."""
    outputs = regenerate_outputs()
    probe = rel
    while probe and probe not in outputs:
        probe = os.path.dirname(probe)
    if not probe:
        return (f"No ``bench/regenerate.py`` set writes ``{RESULTS_REL}/{rel}``; how it was made is recorded "
                "in its folder.")
    name, what, command = outputs[probe]
    threads = " (``N``: the free cores, or ``--threads``)" if " N " in f"{command} " else ""
    return (f"Set ``{name}``: {esc(what)}. Regenerate with ``python bench/regenerate.py {name}``, which runs "
            f"{lit(command)}{threads}.")


# --------------------------------------------------------------------------- renderers, one per kind of file

def render_bench_table(path, rel):
    """A ``cs-fast bench`` (or ``--center``) folder: its text report, as written."""
    lines = []
    meta_file = os.path.join(os.path.dirname(path), "results.json")
    if os.path.exists(meta_file):
        d = read_json(meta_file)
        m = machine_line(d.get("meta"))
        if m:
            lines += [f"Machine: {esc(m)}.", ""]
    lines += literal(read_text(path))
    return lines


def render_center(folder, rel):
    lines = []
    for stem in ("center", "center-2threads"):
        txt = os.path.join(folder, stem + ".txt")
        if not os.path.exists(txt):
            continue
        d = read_json(os.path.join(folder, stem + ".json")) if os.path.exists(os.path.join(folder, stem + ".json")) else {}
        rows = d.get("rows", [])
        threads = sorted({r.get("threads") for r in rows if r.get("threads") is not None})
        loads = [r["load_average"] for r in rows if r.get("load_average") is not None]
        lines += [f".. rubric:: ``{RESULTS_REL}/{rel}/{stem}.txt``", ""]
        facts = []
        m = machine_line(d.get("machine"))
        if m:
            facts.append(f"machine: {esc(m)}")
        if threads:
            facts.append(f"cs_fast threads: {', '.join(map(str, threads))}")
        if loads:
            facts.append(f"load average {min(loads):.1f} to {max(loads):.1f} over the rows")
        if facts:
            text = "; ".join(facts)
            lines += [text[:1].upper() + text[1:] + ".", ""]
        lines += literal(read_text(txt))
    core = os.path.join(folder, "core_cost.txt")
    if os.path.exists(core):
        lines += [f".. rubric:: ``{RESULTS_REL}/{rel}/core_cost.txt``", ""]
        lines += ["What an exact count must evaluate for rows near the center "
                  "(``python bench/center_core_cost.py``; regenerate set ``center-core-cost``).", ""]
        lines += literal(read_text(core))
    return lines


def render_headline(path, rel):
    d = read_json(path)
    rows = [[esc(r["workload"]), esc(r["peer"]), fmt_s(r["cs_fast_s"]), fmt_s(r["peer_s"]),
             f"{r['peer_s'] / r['cs_fast_s']:.1f}×", load_avg(r.get("load_1m"))] for r in d["rows"]]
    lines = table(["workload", "peer", "cs_fast", "peer", "peer / cs_fast", "load (1 min)"], rows)
    lines += [f"Timing: {esc(d.get('timing', 'not recorded'))}. Machine: {esc(machine_line(d.get('machine')))}. "
              f"Load average at the start {load_avg(d.get('load_start', {}).get('load_average'))}, at the end "
              f"{load_avg(d.get('load_averages_end'))} (1, 5 and 15 minutes).", ""]
    return lines


def render_startup(path, rel):
    d = read_json(path)
    labels = {
        "certify_cold": "``cs-fast certify``, cold (empty numba cache: compiles the kernels)",
        "certify_warm": "``cs-fast certify``, warm (kernels loaded from numba's cache)",
        "import_cs_fast": "``import cs_fast``",
        "import_torch": "``import torch`` (for scale)",
        "python_startup": "``python -c pass``",
    }
    rows = []
    for key, label in labels.items():
        if key in d:
            r = d[key]
            rows.append([label, fmt_s(r["wall_s"]), fmt_s(r["cpu_s"]), str(r.get("runs", "")),
                         fmt(r.get("kernels_compiled"))])
    lines = table(["fresh process", "wall (median)", "CPU", "runs", "kernels compiled"], rows)
    lines += [f"Measured command: {lit(d.get('command', ''))}; load average {load_avg(d.get('load_average_start'))} "
              f"at the start, {load_avg(d.get('load_average_end'))} at the end.", ""]
    return lines


def render_mixed(folder, rel):
    d = read_json(os.path.join(folder, "mixed_precision.json"))
    rows = []
    for r in d["rows"]:
        secs = r["seconds"]
        cs = secs.get("cs_fast")
        peers = "; ".join(f"{esc(k)} {fmt_s(v)} ({r['ratio_peer_over_cs_fast'].get(k, 0):.2f}×)"
                          for k, v in secs.items() if k != "cs_fast")
        size = f"n = {r['n']}" + (f", d = {r['d']}" if r.get("d") else "")
        rows.append([esc(r["op"]), size, fmt_s(cs), peers, load_avg(r.get("load_average"))])
    lines = table(["operation", "size", "cs_fast", "others (their time / cs_fast's)", "load (start, end)"], rows,
                  widths=[14, 14, 10, 48, 14])
    m = machine_line(d.get("machine"))
    if m:
        lines += [f"Machine: {esc(m)}. Best of the timed calls, every implementation in the same run on the same "
                  "data.", ""]
    return lines


def _vacuous(record):
    """A face record's ``vacuous``; the runs made before certificates recorded it get it from the metric's bound."""
    if "vacuous" in record:
        return record["vacuous"]
    from cs_fast import get_metric

    return not record["abstained"] and record["eps_out"] >= get_metric("jaccard").upper_bound


def render_faces(path, rel):
    rows = read_json(path)
    out_rows = []
    for r in rows:
        out_rows.append([fmt(r["eps1"]), fmt(r["h"]), fmt(r["sigma"]), f"{r['n']} / {r['m']}",
                         "abstained" if r["abstained"] else fmt(r["eps_out"]), fmt(r.get("smoothing_error")),
                         fmt(r.get("p"), 4), fmt(_vacuous(r)),
                         f"{r['seconds'] / 60:.1f} min"])
        if isinstance(r.get("authors"), dict):
            a = r["authors"]
            out_rows.append(["", "", "authors' units", "", fmt(a["eps_out"]), fmt(a.get("smoothing_error")),
                             fmt(a.get("p"), 4), fmt(_vacuous(a)), f"{a['seconds'] / 60:.1f} min"])
    first = rows[0] if rows else {}
    lines = table(["eps1", "h", "sigma", "n / m", "eps_out", "smoothing error", "p", "vacuous", "time"], out_rows)
    facts = [f"{k.replace('_', ' ')} {lit(first[k])}" for k in ("photo", "min_face_size", "full_photo", "root_seed")
             if k in first]
    if facts:
        lines += ["Settings recorded with the rows: " + ", ".join(facts) + ".", ""]
    return lines


def render_perceptual(folder, rel):
    d = read_json(os.path.join(folder, "certificates.json"))
    t = d["timing"]
    lines = [f"Picking the center of n = {t['n']} samples ({t['dim']} features per image):", ""]
    rows = [
        ["sampling (common to every route)", fmt_s(t["sample_s"]), "measured"],
        ["cs_fast, exact center over all pairs", fmt_s(t["exact_s"]), "measured"],
        [f"cs_fast, {t['candidates']} candidates", fmt_s(t["candidates_s"]), "measured"],
        [f"authors' route, {t['candidates']} candidates by network calls", fmt_s(t["authors_s"]), "measured"],
        ["exact center by network calls", fmt_s(t["authors_exact_s_estimate"]),
         "**extrapolated** from the row above, not run"],
    ]
    lines += table(["route", "time", "kind"], rows)
    lines += [f"Median radius of the center: exact {t['exact_radius']:.4g}, best of {t['candidates']} candidates "
              f"{t['candidates_radius']:.4g} (the authors' route: {t['authors_radius']:.4g}).", ""]
    other = os.path.join(folder, "candidates30", "certificates.json")
    cand = {(r["eps1"], r["h"]): r for r in read_json(other)["rows"]} if os.path.exists(other) else {}
    rows = []
    for r in d["rows"]:
        c = cand.get((r["eps1"], r["h"]), {})
        rows.append([fmt(r["eps1"]), fmt(r["h"]), fmt(r["eps_out"]), fmt(c.get("eps_out")),
                     fmt(r["smoothing_error"], 2), fmt(c.get("smoothing_error"), 2), f"{r['seconds']:.1f} s"])
    lines += table(["eps1", "h", "eps_out, exact", "eps_out, 30 candidates", "smoothing error, exact",
                    "smoothing error, 30 candidates", "time (exact)"], rows)
    return lines


def _summary_and_table(folder, json_name, summary):
    """``summary(record)`` of the folder's JSON record, then its ``table.txt`` as the program wrote it."""
    return [summary(read_json(os.path.join(folder, json_name))), ""] + literal(
        read_text(os.path.join(folder, "table.txt")))


def render_audit(folder, rel):
    return _summary_and_table(folder, "audit.json", lambda d: (
        f"Command recorded in ``audit.json``: {lit(d.get('command', ''))}; {d.get('certificates', '?')} "
        f"certificates in {d.get('seconds', 0):.0f} s of audit."))


def render_text(path, rel):
    return literal(read_text(path))


def render_gpu_model(folder, rel):
    d = read_json(os.path.join(folder, "model.json"))
    h = d.get("h100", {})
    lines = [".. admonition:: Estimates, not measurements", "   :class: warning cs-fast-estimate", ""]
    body = [
        "No GPU has run these kernels for these figures. Each time below is **estimated** from the compiled "
        "kernels' instruction and byte counts and the published peak rates of an H100 SXM "
        f"({h.get('sms', '?')} SMs at {h.get('clock_hz', 0) / 1e9:.2f} GHz, "
        f"{h.get('hbm_bytes_per_s', 0) / 1e12:.2f} TB/s HBM), with the arithmetic shown. "
        "A lent GPU replaces them with measurements (``bash bench/gpu_session.sh``).",
        "",
    ]
    rows = [[esc(w["name"]), f"**{esc(w['figure'])}** (estimate)"] for w in d.get("workloads", [])]
    body += table(["workload", "estimated H100 time"], rows, widths=[55, 45])
    for w in d.get("workloads", []):
        body += [f".. rubric:: {esc(w['name'])}: {esc(w['figure'])} (estimate)", ""]
        body += [f"- {esc(step)}" for step in w.get("arithmetic", [])] + [""]
    archs = ("sm_90", "sm_75")
    compiled = []
    for kernel, info in d.get("kernels", {}).items():
        per = [info.get(arch, {}) for arch in archs]
        compiled.append([esc(kernel), " / ".join(str(k.get("registers", "—")) for k in per),
                         " / ".join(str(k.get("smem_bytes", "—")) for k in per),
                         " / ".join(str(k.get("spill_store_bytes", 0) + k.get("spill_load_bytes", 0)) for k in per)])
    if compiled:
        body += [".. rubric:: What the compiler reports (ptxas -v; a fact about the code, not a timing)", ""]
        body += table(["kernel", "registers (sm_90 / sm_75)", "shared memory, bytes", "spilled bytes"], compiled,
                      widths=[52, 16, 16, 16])
    lines += ["   " + line if line else "" for line in body]
    return lines


def render_distributed(folder, rel):
    return _summary_and_table(folder, "results.json", lambda d: (
        f"{d.get('inputs', '?')} inputs, {d.get('cores', '?')} cores, {d.get('rounds', '?')} rounds, "
        f"``OMP_WAIT_POLICY={d.get('omp_wait_policy', '?')}``."))


def render_folder(folder, rel):
    """Anything without a renderer of its own: its text reports as written, the other files by name."""
    lines = []
    others = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            shown = os.path.relpath(path, RESULTS).replace(os.sep, "/")
            if name.endswith((".txt", ".md")) and os.path.getsize(path) < 200_000:
                lines += [f".. rubric:: ``{RESULTS_REL}/{shown}``", ""] + literal(read_text(path))
            else:
                others.append(shown)
    if others:
        lines += ["Other files: " + ", ".join(f"``{RESULTS_REL}/{o}``" for o in others) + ".", ""]
    return lines


#: (test on the path relative to bench/results, renderer); the first match renders.
RENDERERS = [
    (lambda rel, p: rel == "gpu-model", render_gpu_model),
    (lambda rel, p: rel == "prune", render_center),
    (lambda rel, p: rel.startswith("headline") and rel.endswith(".json"), render_headline),
    (lambda rel, p: rel.startswith("startup") and rel.endswith(".json"), render_startup),
    (lambda rel, p: os.path.exists(os.path.join(p, "mixed_precision.json")), render_mixed),
    (lambda rel, p: os.path.exists(os.path.join(p, "audit.json")), render_audit),
    (lambda rel, p: rel.startswith("distributed") and os.path.isdir(p), render_distributed),
    (lambda rel, p: rel.startswith("perceptual") and os.path.isdir(p), render_perceptual),
    (lambda rel, p: rel.startswith("faces") and rel.endswith(".json"), render_faces),
    (lambda rel, p: rel.endswith("table.txt"), render_bench_table),
    (lambda rel, p: rel.endswith((".txt", ".md")), render_text),
    (lambda rel, p: os.path.isdir(p), render_folder),
]


def render(rel):
    path = os.path.join(RESULTS, rel)
    for test, renderer in RENDERERS:
        if test(rel, path):
            return renderer(path, rel)
    raise ValueError(f"no renderer for {RESULTS_REL}/{rel}")


def files_under(path):
    if os.path.isfile(path):
        return [path]
    return [os.path.join(root, f) for root, _, files in os.walk(path) for f in files]


# --------------------------------------------------------------------------- directives

class _Rst(SphinxDirective):
    def emit(self, lines, depends=()):
        for path in depends:
            self.env.note_dependency(path)
        self.env.note_dependency(os.path.join(REPO, "bench", "regenerate.py"))
        self.env.note_dependency(__file__)
        holder = nodes.section()
        holder.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source=f"<{self.name}>"), holder)
        return holder.children


class ResultSet(_Rst):
    required_arguments = 1
    has_content = False

    def run(self):
        rel = self.arguments[0].strip("/")
        path = os.path.join(RESULTS, rel)
        if not os.path.exists(path):
            logger.warning("%s/%s does not exist", RESULTS_REL, rel, location=self.get_location())
            return []
        lines = [f"Source: ``{RESULTS_REL}/{rel}``. {provenance(rel)}", ""] + render(rel)
        return self.emit(lines, files_under(path))


class ResultIndex(_Rst):
    has_content = False

    def run(self):
        outputs = regenerate_outputs()
        rows = []
        covered = set()
        for rel, (name, what, command) in sorted(outputs.items(), key=lambda kv: kv[1][0]):
            exists = os.path.exists(os.path.join(RESULTS, rel))
            rows.append([f"``{name}``", f"``{RESULTS_REL}/{rel}``" + ("" if exists else " (not committed)"),
                         esc(what)])
            covered.add(rel.split("/")[0])
        for entry in sorted(os.listdir(RESULTS)):
            if entry not in covered:
                rows.append(["—", f"``{RESULTS_REL}/{entry}``", "no regeneration command; see the files"])
        lines = table(["set", "output", "what"], rows, widths=[18, 37, 45])
        return self.emit(lines, [RESULTS])


class NotFaster(_Rst):
    required_arguments = 1
    has_content = False

    def run(self):
        rel = self.arguments[0]
        path = os.path.join(RESULTS, rel)
        doc = read_json(path)
        rows = []
        for (workload, op, peer), items in sorted(bench_script("not_faster").losses(doc).items()):
            sizes = ", ".join(str(n) for n, _ in items)
            lo, hi = min(f for _, f in items), max(f for _, f in items)
            span = f"{lo:.2g}×" if abs(hi - lo) < 0.05 * lo else f"{lo:.2g}–{hi:.2g}×"
            rows.append([esc(workload), esc(op), esc(peer), span, sizes])
        meta = doc.get("meta", {})
        lines = [f"From ``{RESULTS_REL}/{rel}`` (``python bench/not_faster.py {RESULTS_REL}/{rel}``; quick run: "
                 f"{fmt(doc.get('config', {}).get('quick'))}; threads: numba {meta.get('numba_threads', '?')}, "
                 f"torch {meta.get('torch_threads', '?')}).", ""]
        if rows:
            lines += table(["workload", "operation", "faster peer", "by", "n"], rows)
        else:
            lines += ["cs_fast is faster than every peer in every row.", ""]
        return self.emit(lines, [path, os.path.join(REPO, "bench", "not_faster.py")])


class GpuMeasured(_Rst):
    has_content = False

    def run(self):
        folders = sorted(e for e in os.listdir(RESULTS)
                         if e.startswith("gpu-") and e != "gpu-model" and os.path.isdir(os.path.join(RESULTS, e)))
        if not folders:
            lines = ["No GPU has been measured yet: there is no ``bench/results/gpu-<device>/`` folder. "
                     "Every GPU figure in these pages is an estimate from ``bench/results/gpu-model/``.", ""]
            return self.emit(lines, [RESULTS])
        lines = []
        for folder in folders:
            lines += [f".. rubric:: ``{RESULTS_REL}/{folder}`` (measured)", ""]
            lines += render_folder(os.path.join(RESULTS, folder), folder)
        return self.emit(lines, [os.path.join(RESULTS, f) for f in folders])


def setup(app):
    app.add_directive("cs-fast-results", ResultSet)
    app.add_directive("cs-fast-results-index", ResultIndex)
    app.add_directive("cs-fast-not-faster", NotFaster)
    app.add_directive("cs-fast-gpu-measured", GpuMeasured)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
