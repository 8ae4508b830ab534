#!/usr/bin/env python3
"""report.py - results of `make bench` (bench/run.sh): CSV, JSON, the table, plots.

    bench/report.py summarize OUTDIR     read OUTDIR/records.txt (the key=value
                                         lines of every run) and OUTDIR/runs.txt;
                                         write runs.csv, mem.csv, medians.csv,
                                         summary.json, table.txt, throughput.png,
                                         latency-cdf.png (when lat.csv has data)
    bench/report.py cdf IN.csv OUT.png [--phase P] [--title T]
                                         a fault-latency CDF from any CSV of
                                         "label,rep,phase,latency_ns" rows (a
                                         header line is skipped); one curve per
                                         label; --phase keeps only that phase

Medians are over the repetitions that finished.  Plots need gnuplot; without
it the CSV/JSON and the table are still written.
"""
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys

PHASES = ["populate", "seq_read", "rand_read", "rand_write", "zipf_read",
          "mt_read", "verify"]
PHASE_LABEL = {"populate": "populate", "seq_read": "seq read",
               "rand_read": "rand read", "rand_write": "rand write",
               "zipf_read": "zipf read", "mt_read": "rand read x{t}",
               "verify": "verify (full)"}
SYSTEMS = ["ram", "kernel", "uswap-lib", "uswap-run"]
MiB = 1024.0 * 1024.0


def parse_kv(line):
    parts = line.split()
    rec = {"kind": parts[0]}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            rec[k] = v
        else:
            rec.setdefault("flags", []).append(p)
    return rec


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_rate(v):
    if v is None:
        return "-"
    if v >= 10e6:
        return "%.1fM" % (v / 1e6)
    if v >= 10e3:
        return "%.1fk" % (v / 1e3)
    return "%.0f" % v


def fmt(v, f="%.2f"):
    return "-" if v is None else f % v


def load(outdir):
    """Records of every run, and the driver's run list (status per run)."""
    recs = []
    path = os.path.join(outdir, "records.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.split(" ", 1)[0] in ("config", "phase", "mem", "result"):
                    recs.append(parse_kv(line))
    runs = []
    path = os.path.join(outdir, "runs.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.startswith("run "):
                    runs.append(parse_kv(line))
    meta = {}
    path = os.path.join(outdir, "meta.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return recs, runs, meta


def mem_derived(m):
    """Memory figures of one run's mem record, by system kind."""
    g = lambda k: num(m.get(k))
    sysname = m.get("system", "")
    d = {"rss": (g("rss_kib") or 0) * 1024 if g("rss_kib") is not None else None,
         "hwm": (g("hwm_kib") or 0) * 1024 if g("hwm_kib") is not None else None}
    if g("zram_mem_used") is not None or g("cg_usage") is not None:
        d["resident"] = g("cg_usage")
        d["pool"] = g("zram_mem_used")
        d["peak"] = g("cg_max_usage")
        d["orig"] = g("zram_orig")
        compr, used = g("zram_compr"), g("zram_mem_used")
        d["ratio"] = d["orig"] / compr if d["orig"] and compr else None
        d["efficiency"] = d["orig"] / used if d["orig"] and used else None
    elif g("pool") is not None:
        d["resident"] = g("resident")
        d["pool"] = g("pool")
        d["peak"] = g("resident_peak")
        d["orig"] = g("stored_orig")
        compr, pool = g("stored_compr"), g("pool")
        d["ratio"] = d["orig"] / compr if d["orig"] and compr else None
        d["efficiency"] = d["orig"] / pool if d["orig"] and pool else None
    else:
        d["resident"] = d["rss"]
        d["pool"] = 0.0 if sysname == "ram" else None
        d["peak"] = d["hwm"]
        d["orig"] = d["ratio"] = d["efficiency"] = None
    if d.get("resident") is not None and d.get("pool") is not None:
        d["total"] = d["resident"] + d["pool"]
    else:
        d["total"] = None
    return d


def gnuplot(script, cwd):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found: no plots (install gnuplot-nox)",
              file=sys.stderr)
        return False
    r = subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd,
                       capture_output=True)
    if r.returncode:
        print("report: gnuplot failed:\n" + r.stderr, file=sys.stderr)
        return False
    return True


def cdf_points(values, maxpts=400):
    """(x, F(x)) pairs of the empirical CDF, thinned to about maxpts."""
    v = sorted(values)
    n = len(v)
    step = max(1, n // maxpts)
    pts = [(v[i], (i + 1) / n) for i in range(0, n, step)]
    if pts[-1][1] < 1.0:
        pts.append((v[-1], 1.0))
    return pts


def plot_cdf(rows, out_png, title, phase=None):
    """rows: (label, phase, latency_ns).  One curve per label, x in us."""
    by = {}
    for label, ph, ns in rows:
        if phase and ph != phase:
            continue
        by.setdefault(label, []).append(ns / 1000.0)
    by = {k: v for k, v in by.items() if v}
    if not by:
        return False
    outdir = os.path.dirname(os.path.abspath(out_png))
    base = os.path.splitext(os.path.basename(out_png))[0]
    plots = []
    for i, (label, v) in enumerate(sorted(by.items())):
        dat = "%s.%d.dat" % (base, i)
        with open(os.path.join(outdir, dat), "w") as f:
            f.write("# latency_us cdf (%s, n=%d)\n" % (label, len(v)))
            for x, y in cdf_points(v):
                f.write("%.3f %.5f\n" % (x, y))
        plots.append("'%s' using 1:2 with lines lw 2 title '%s (n=%d, median %.1f us)'"
                     % (dat, label, len(v), statistics.median(v)))
    script = """set terminal pngcairo size 900,560 noenhanced font ',10'
set output '%s'
set title '%s'
set xlabel 'fault latency, us (log scale)'
set ylabel 'fraction of faults <= x'
set logscale x
set grid
set key bottom right
set yrange [0:1]
plot %s
""" % (os.path.basename(out_png), title.replace("'", ""), ", ".join(plots))
    return gnuplot(script, outdir)


def summarize(outdir):
    recs, runs, meta = load(outdir)
    phases = [r for r in recs if r["kind"] == "phase"]
    mems = [r for r in recs if r["kind"] == "mem"]
    configs = [r for r in recs if r["kind"] == "config"]
    oks = {(r["system"], r.get("rep")) for r in recs if r["kind"] == "result"}
    present = [s for s in SYSTEMS if any(p["system"] == s for p in phases)]
    threads = configs[0].get("threads", "2") if configs else "2"

    # runs.csv: one row per run and phase
    cols = ["system", "rep", "name", "ops", "secs", "ops_per_s", "faults",
            "us_per_fault", "fault_src", "majflt", "minflt", "swapins",
            "swapouts", "cpu_secs"]
    with open(os.path.join(outdir, "runs.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["system", "rep", "phase"] + cols[3:] + ["completed"])
        for p in phases:
            w.writerow([p.get(c, "") for c in cols] +
                       [int((p["system"], p.get("rep")) in oks)])

    mem_rows = []
    for m in mems:
        d = mem_derived(m)
        d.update(system=m["system"], rep=m.get("rep"))
        mem_rows.append(d)
    mcols = ["system", "rep", "resident", "pool", "total", "peak", "rss",
             "hwm", "orig", "ratio", "efficiency"]
    with open(os.path.join(outdir, "mem.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(mcols)
        for d in mem_rows:
            w.writerow(["" if d.get(c) is None else d.get(c) for c in mcols])

    # medians per system and phase
    med = {}
    for s in present:
        for ph in PHASES:
            rows = [p for p in phases if p["system"] == s and p["name"] == ph]
            if not rows:
                continue
            # us per fault only where faults are at least 1% of the ops:
            # a phase with a handful of faults (kernel populate: refaults)
            # would show its whole time divided by almost nothing
            usf = [num(p["us_per_fault"]) for p in rows
                   if (num(p["faults"]) or 0) >= max(1.0, (num(p["ops"]) or 0) / 100)]
            usf = [x for x in usf if x is not None and x >= 0]
            med[(s, ph)] = {
                "n": len(rows),
                "ops_per_s": median([num(p["ops_per_s"]) for p in rows]),
                "secs": median([num(p["secs"]) for p in rows]),
                "faults": median([num(p["faults"]) for p in rows]),
                "us_per_fault": median(usf) if usf else None,
                "fault_src": rows[0].get("fault_src"),
                "cpu_us_per_op": median([
                    num(p.get("cpu_secs")) * 1e6 / num(p["ops"])
                    if num(p.get("cpu_secs")) is not None and num(p["ops"]) else None
                    for p in rows]),
                "ops_per_s_all": [num(p["ops_per_s"]) for p in rows],
            }
    mmed = {}
    for s in present:
        rows = [d for d in mem_rows if d["system"] == s]
        if rows:
            mmed[s] = {k: median([d.get(k) for d in rows]) for k in
                       ["resident", "pool", "total", "peak", "rss", "hwm",
                        "orig", "ratio", "efficiency"]}

    with open(os.path.join(outdir, "medians.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["system", "phase", "runs", "ops_per_s", "secs", "faults",
                    "us_per_fault", "fault_src", "ratio_to_kernel",
                    "cpu_us_per_op"])
        for (s, ph), v in med.items():
            k = med.get(("kernel", ph), {}).get("ops_per_s")
            ratio = v["ops_per_s"] / k if k and v["ops_per_s"] else None
            w.writerow([s, ph, v["n"], v["ops_per_s"], v["secs"], v["faults"],
                        "" if v["us_per_fault"] is None else v["us_per_fault"],
                        v["fault_src"], "" if ratio is None else ratio,
                        "" if v["cpu_us_per_op"] is None else v["cpu_us_per_op"]])

    summary = {
        "meta": meta,
        "config": configs[0] if configs else {},
        "runs": [r for r in runs],
        "medians": {"%s/%s" % k: {kk: vv for kk, vv in v.items()}
                    for k, v in med.items()},
        "memory_medians": mmed,
        "memory_runs": mem_rows,
        "phases": phases,
    }
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)

    # ---- the table
    L = []
    size = meta.get("size", "?")
    reps = meta.get("repeat", "?")
    L.append("uswap-bench: arena %s, limit %s, %s ops per random phase, %s "
             "threads, seed %s; medians of %s interleaved repetition(s)"
             % (size, meta.get("limit", "?"),
                meta.get("ops") or (configs[0].get("ops", "?") if configs else "?"),
                threads, meta.get("seed", "1"), reps))
    for r in runs:
        if r.get("status") not in ("ok",):
            L.append("  note: %s rep %s: %s" % (r.get("system"), r.get("rep"),
                                                 r.get("status")))
    loads = [num(r.get(k)) for r in runs for k in ("load_start", "load_end")]
    loads = [x for x in loads if x is not None]
    if loads:
        L.append("  machine load (1-min load average at run starts and ends): "
                 "%.1f .. %.1f, median %.1f on %s CPUs"
                 % (min(loads), max(loads), statistics.median(loads),
                    meta.get("cpus", "?")))
    for s, why in [(k[5:], v) for k, v in meta.items() if k.startswith("skip_")]:
        L.append("  %s: skipped: %s" % (s, why))
    others = [s for s in present if s != "ram"]
    uswaps = [s for s in present if s.startswith("uswap")]
    w0 = 15
    hdr1 = "%-*s %s" % (w0, "", "ops/s".center(11 * len(present)))
    hdr2 = "%-*s" % (w0, "phase") + "".join("%11s" % s for s in present)
    if others:
        hdr1 += " | " + "us per major fault".center(11 * len(others))
        hdr2 += " | " + "".join("%11s" % s for s in others)
    if "kernel" in present and uswaps:
        hdr1 += " | " + "uswap/kernel ops/s".center(10 * len(uswaps))
        hdr2 += " | " + "".join("%10s" % ("lib" if s == "uswap-lib" else "run")
                                for s in uswaps)
    L.append("")
    L.append(hdr1.rstrip())
    L.append(hdr2)
    L.append("-" * len(hdr2))
    for ph in PHASES:
        if not any((s, ph) in med for s in present):
            continue
        line = "%-*s" % (w0, PHASE_LABEL[ph].format(t=threads))
        line += "".join("%11s" % fmt_rate(med.get((s, ph), {}).get("ops_per_s"))
                        for s in present)
        if others:
            line += " | " + "".join(
                "%11s" % fmt(med.get((s, ph), {}).get("us_per_fault"))
                for s in others)
        if "kernel" in present and uswaps:
            k = med.get(("kernel", ph), {}).get("ops_per_s")
            line += " | "
            for s in uswaps:
                u = med.get((s, ph), {}).get("ops_per_s")
                line += "%10s" % (fmt(u / k) if u and k else "-")
        L.append(line)
    L.append("")
    L.append("faults: kernel and ram = the process's majflt; uswap-lib = "
             "pages swapped in (uswap_stats)")
    if "uswap-run" in present:
        src = med.get(("uswap-run", "rand_read"), {}).get("fault_src", "?")
        L.append("        uswap-run = %s" % (
            "pages swapped in, from the shim's stats file" if src == "statsfile"
            else "minor faults (no stats file from the shim)"))
    L.append("us per major fault = phase time / faults, workload included "
             "('-': faults < 1% of ops)")

    # CPU time per operation: what the work costs, busy machine or not
    L.append("")
    hdr = "%-*s" % (w0, "CPU us per op") + "".join("%11s" % s for s in present)
    L.append(hdr + "   (user + system time of the process, every thread)")
    L.append("-" * len(hdr))
    for ph in PHASES:
        if not any((s, ph) in med for s in present):
            continue
        L.append("%-*s" % (w0, PHASE_LABEL[ph].format(t=threads)) + "".join(
            "%11s" % fmt(med.get((s, ph), {}).get("cpu_us_per_op"))
            for s in present))

    latp = os.path.join(outdir, "lat.csv")
    lat_rows = read_lat(latp) if os.path.exists(latp) else []
    lat_stats = {}
    for s in present:
        for ph in ("rand_read", "zipf_read"):
            v = sorted(ns / 1000.0 for (lab, p_, ns) in lat_rows
                       if lab == s and p_ == ph)
            if v:
                q = lambda f: v[min(len(v) - 1, int(f * len(v)))]
                lat_stats[(s, ph)] = {"n": len(v), "p50": q(0.50), "p90": q(0.90),
                                      "p99": q(0.99), "mean": sum(v) / len(v)}
    if lat_stats:
        L.append("")
        L.append("sampled fault latency, us (one load of a page mincore(2) "
                 "reported not resident; every run)")
        hdr = "%-22s%8s%9s%9s%9s%9s" % ("", "n", "p50", "p90", "p99", "mean")
        L.append(hdr)
        L.append("-" * len(hdr))
        for (s, ph), st in lat_stats.items():
            L.append("%-22s%8d%9.1f%9.1f%9.1f%9.1f" % (
                "%s %s" % (s, PHASE_LABEL[ph]), st["n"], st["p50"], st["p90"],
                st["p99"], st["mean"]))
        summary["fault_latency_us"] = {"%s/%s" % k: v for k, v in lat_stats.items()}
        with open(os.path.join(outdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1, sort_keys=True)

    if mmed:
        L.append("")
        hdr = "%-44s" % "memory at the end (MiB; medians)" + "".join(
            "%11s" % s for s in present if s in mmed)
        L.append(hdr)
        L.append("-" * len(hdr))
        rowsdef = [
            ("resident: RSS | cgroup usage | uswap resident", "resident", MiB, "%.1f"),
            ("pool: zram mem_used_total | uswap pool", "pool", MiB, "%.1f"),
            ("total (resident + pool)", "total", MiB, "%.1f"),
            ("peak: VmHWM | cgroup max usage | uswap res.", "peak", MiB, "%.1f"),
            ("process RSS (uswap: pool included)", "rss", MiB, "%.1f"),
            ("stored (original), MiB", "orig", MiB, "%.1f"),
            ("compression ratio (orig / compressed)", "ratio", 1, "%.2fx"),
            ("memory efficiency (orig / pool)", "efficiency", 1, "%.2fx"),
        ]
        for label, key, div, f in rowsdef:
            line = "%-44s" % label
            for s in present:
                if s not in mmed:
                    continue
                v = mmed[s].get(key)
                line += "%11s" % (fmt(v / div, f) if v is not None else "-")
            L.append(line)
        kt = mmed.get("kernel", {}).get("total")
        if kt:
            line = "%-44s" % "total / kernel's total"
            for s in present:
                if s not in mmed:
                    continue
                v = mmed[s].get("total")
                line += "%11s" % (fmt(v / kt, "%.2fx") if v else "-")
            L.append(line)
    table = "\n".join(L) + "\n"
    with open(os.path.join(outdir, "table.txt"), "w") as f:
        f.write(table)
    sys.stdout.write(table)

    # ---- plots
    if present:
        with open(os.path.join(outdir, "throughput.dat"), "w") as f:
            f.write("# phase " + " ".join(present) + "\n")
            for ph in PHASES:
                vals = [med.get((s, ph), {}).get("ops_per_s") for s in present]
                f.write('"%s" ' % PHASE_LABEL[ph].format(t=threads) +
                        " ".join("%.1f" % v if v else "NaN" for v in vals) + "\n")
        cols = " ".join(["'throughput.dat' using %d:xtic(1) title '%s'" % (
            i + 2, s) for i, s in enumerate(present)]).replace("' '", "', '")
        cols = ", ".join("'throughput.dat' using %d:xtic(1) title '%s'" % (i + 2, s)
                         for i, s in enumerate(present))
        script = """set terminal pngcairo size 1000,560 noenhanced font ',10'
set output 'throughput.png'
set title 'uswap-bench: %s arena, %s limit; ops/s per phase, median of %s (log scale)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1000:*]
set ylabel 'operations (pages) per second'
set grid ytics
set key top right
set xtics nomirror
plot %s
""" % (size, meta.get("limit", "?"), reps, cols)
        gnuplot(script, outdir)
    latp = os.path.join(outdir, "lat.csv")
    if os.path.exists(latp):
        rows = read_lat(latp)
        if rows:
            plot_cdf(rows, os.path.join(outdir, "latency-cdf.png"),
                     "fault latency (sampled, rand read + zipf read), %s arena, %s limit"
                     % (size, meta.get("limit", "?")))


def read_lat(path):
    rows = []
    with open(path) as f:
        for r in csv.reader(f):
            if len(r) < 4:
                continue
            try:
                rows.append((r[0], r[2], float(r[3])))
            except ValueError:
                continue	# header
    return rows


def main(argv):
    if len(argv) >= 2 and argv[0] == "summarize":
        summarize(argv[1])
        return 0
    if len(argv) >= 3 and argv[0] == "cdf":
        phase, title = None, "fault latency CDF"
        rest = argv[3:]
        while rest:
            if rest[0] == "--phase" and len(rest) > 1:
                phase, rest = rest[1], rest[2:]
            elif rest[0] == "--title" and len(rest) > 1:
                title, rest = rest[1], rest[2:]
            else:
                print(__doc__, file=sys.stderr)
                return 2
        ok = plot_cdf(read_lat(argv[1]), argv[2], title, phase)
        return 0 if ok else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
