#!/usr/bin/python3
"""Turn Google Benchmark JSON output of the torchloss benchmarks into markdown ratio tables.

Usage:
    bench_cross_entropy --benchmark_format=json > run.json
    /usr/bin/python3 bench/summarize.py run.json [rerun.json ...]
    bench_cross_entropy --benchmark_format=json | /usr/bin/python3 bench/summarize.py -

Benchmark names follow bench_common.hpp: BM_<Family>/<variant>/<N>/<C>/threads:<T>[/real_time].
For every family, one table row per shape and thread count gives each variant's wall time
in ms, its ratio to the copy floor (BM_CopyFloor/clone at that shape: x.clone()), and the
speedup of the `torchloss` variant over every other variant (their time / torchloss's time;
above 1 means torchloss is faster). With --benchmark_repetitions, the aggregate named by
--stat is used (default min, which bench_common.hpp adds: the least disturbed repetition on a
shared machine), falling back to the median; without repetitions, the mean of the runs. With several files, a benchmark in a later file replaces the same one in an
earlier file (re-run the noisy rows with --benchmark_filter and pass both files).

With --leg LABEL=FILE[,FILE...] (given once per LibTorch build), one table per family puts
the builds side by side instead: for each, torchloss's time, its ratio to that build's copy
floor and its speedup over each other variant of that build (e.g. LibTorch 1.13's built-in
cross entropy beside 2.x's).

Standard library only.
"""

import argparse
import json
import re
import sys
from collections import OrderedDict, defaultdict

NAME_RE = re.compile(r"^(?P<family>BM_\w+)/(?P<variant>[^/]+)/(?P<rows>\d+)/(?P<classes>\d+)/threads:(?P<threads>\d+)")
FLOOR_FAMILY = "BM_CopyFloor"
REFERENCE_VARIANT = "torchloss"
TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
DESCRIPTIONS = {
    "BM_WeightedCE": "Weighted cross entropy, forward + backward (random class weights)",
    "BM_WeightedCEForward": "Weighted cross entropy, forward only (diagnostic)",
    "BM_WeightedBCE": "α-weighted binary cross entropy (α = 0.25, soft targets), forward + backward",
    "BM_LogitAdjustedCE": "Logit-adjusted cross entropy (τ = 1, counts 1000 → 10), forward + backward",
    "BM_LDAM": "LDAM (max margin 0.5, s = 30, counts 1000 → 10), forward + backward",
    "BM_ASL": "Asymmetric loss (γ+ = 0, γ− = 4, clip 0.05, binary targets, sum), forward + backward",
    "BM_SoftTargetCE": "Soft-target cross entropy (softmax targets, mean over rows), forward + backward",
    "BM_MixupCE": "Mixup cross entropy (λ = 0.7, label smoothing 0.1, y and y.flip(0)), forward + backward",
    "BM_Seesaw": "Seesaw loss (p = 0.8, q = 2, ε = 0.01, counts updated each step), forward + backward",
}


def load_times(paths, stat):
    """Returns {(family, variant, rows, classes, threads): ms} over all files, later files winning."""
    times = {}
    for path in paths:
        with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as stream:
            data = json.load(stream)
        runs = defaultdict(list)  # run_name -> real times (ms) of its iterations
        aggregates = defaultdict(dict)  # run_name -> {aggregate name: ms}
        for bench in data.get("benchmarks", []):
            if bench.get("error_occurred"):
                continue
            name = bench.get("run_name", bench["name"])
            ms = float(bench["real_time"]) * TO_MS[bench.get("time_unit", "ns")]
            if bench.get("run_type") == "aggregate":
                aggregates[name][bench.get("aggregate_name")] = ms
            else:
                runs[name].append(ms)
        file_times = {name: sum(values) / len(values) for name, values in runs.items()}
        for name, by_stat in aggregates.items():
            for choice in (stat, "median", "mean"):
                if choice in by_stat:
                    file_times[name] = by_stat[choice]
                    break
        for name, ms in file_times.items():
            match = NAME_RE.match(name)
            if not match:
                continue
            key = (match["family"], match["variant"], int(match["rows"]), int(match["classes"]),
                   int(match["threads"]))
            times[key] = ms
    return times


def fmt_ms(ms):
    return "—" if ms is None else (f"{ms:.4f}" if ms < 0.1 else f"{ms:.3f}" if ms < 10 else f"{ms:.1f}")


def fmt_ratio(ratio):
    return "—" if ratio is None else f"{ratio:.2f}×"


def summarize(times, out, stat="min"):
    families = OrderedDict()  # family -> OrderedDict of variants, in first-seen order
    configs = set()
    for family, variant, rows, classes, threads in times:
        families.setdefault(family, OrderedDict())[variant] = None
        configs.add((rows, classes, threads))
    families.pop(FLOOR_FAMILY, None)
    floor = {(r, c, t): ms for (f, _, r, c, t), ms in times.items() if f == FLOOR_FAMILY}
    slower = []

    for family, variant_set in families.items():
        variants = list(variant_set)
        if REFERENCE_VARIANT in variants:  # the reference first
            variants.remove(REFERENCE_VARIANT)
            variants.insert(0, REFERENCE_VARIANT)
        others = [v for v in variants if v != REFERENCE_VARIANT] if REFERENCE_VARIANT in variants else []
        out.write(f"### {family}: {DESCRIPTIONS.get(family, family)}\n\n")
        header = ["N×C", "threads", "copy floor ms"]
        header += [f"{v} ms" for v in variants]
        header += [f"{v} / floor" for v in variants]
        header += [f"torchloss speedup vs {v}" for v in others]
        out.write("| " + " | ".join(header) + " |\n")
        out.write("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|\n")
        family_configs = sorted({(r, c, t) for (f, _, r, c, t) in times if f == family},
                                key=lambda k: (k[0] * k[1], k[0], k[2]))
        for rows, classes, threads in family_configs:
            base = floor.get((rows, classes, threads))
            ms = {v: times.get((family, v, rows, classes, threads)) for v in variants}
            cells = [f"{rows}×{classes}", str(threads), fmt_ms(base)]
            cells += [fmt_ms(ms[v]) for v in variants]
            cells += [fmt_ratio(ms[v] / base if ms[v] is not None and base else None) for v in variants]
            for v in others:
                mine, theirs = ms[REFERENCE_VARIANT], ms[v]
                speedup = theirs / mine if mine and theirs is not None else None
                cell = fmt_ratio(speedup)
                if speedup is not None and speedup < 1:
                    cell = f"**{cell}**"
                    slower.append((family, v, rows, classes, threads, speedup))
                cells.append(cell)
            out.write("| " + " | ".join(cells) + " |\n")
        out.write("\n")

    out.write(f"Times are wall-clock ms per iteration ({stat} over repetitions where the run had them). "
              "Speedup = the other variant's time / torchloss's time (above 1: torchloss faster). "
              "Ratios to the floor divide by the time of x.clone() on the same logits.\n")
    if slower:
        out.write("\ntorchloss is slower (bold above) in: "
                  + "; ".join(f"{f}/{v} at {r}×{c}, {t} thread(s): {s:.2f}×" for f, v, r, c, t, s in slower)
                  + "\n")
    return slower


def compare_legs(legs, out):
    """legs: [(label, times)]. One table per family, each build's columns side by side."""
    families = OrderedDict()
    for _, times in legs:
        for family, variant, *_ in times:
            if family != FLOOR_FAMILY:
                families.setdefault(family, OrderedDict())[variant] = None
    for family, variant_set in families.items():
        others = [v for v in variant_set if v != REFERENCE_VARIANT]
        out.write(f"#### {family}: {DESCRIPTIONS.get(family, family)}\n\n")
        header = ["N×C", "threads"]
        for label, _ in legs:
            header += [f"{label}: torchloss ms", f"{label}: torchloss / floor"]
            header += [f"{label}: speedup vs {v}" for v in others]
        out.write("| " + " | ".join(header) + " |\n")
        out.write("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|\n")
        configs = sorted({(r, c, t) for _, times in legs for (f, _, r, c, t) in times if f == family},
                         key=lambda k: (k[0] * k[1], k[0], k[2]))
        for rows, classes, threads in configs:
            cells = [f"{rows}×{classes}", str(threads)]
            for _, times in legs:
                mine = times.get((family, REFERENCE_VARIANT, rows, classes, threads))
                base = times.get((FLOOR_FAMILY, "clone", rows, classes, threads))
                cells += [fmt_ms(mine), fmt_ratio(mine / base if mine and base else None)]
                for v in others:
                    theirs = times.get((family, v, rows, classes, threads))
                    cells.append(fmt_ratio(theirs / mine if mine and theirs else None))
            out.write("| " + " | ".join(cells) + " |\n")
        out.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", nargs="*", help="Google Benchmark JSON files ('-' for stdin); later ones win")
    parser.add_argument("--leg", action="append", default=[], metavar="LABEL=FILE[,FILE...]",
                        help="one LibTorch build's results; given twice or more, the builds side by side")
    parser.add_argument("--stat", default="min", choices=["min", "median", "mean"],
                        help="aggregate to use when the run has repetitions (default: min)")
    args = parser.parse_args()
    if args.leg:
        legs = [(label, load_times(files.split(","), args.stat))
                for label, files in (leg.split("=", 1) for leg in args.leg)]
        compare_legs(legs, sys.stdout)
        return
    times = load_times(args.json, args.stat)
    if not times:
        sys.exit("summarize.py: no BM_<Family>/<variant>/<N>/<C>/threads:<T> benchmarks in the input")
    summarize(times, sys.stdout, args.stat)


if __name__ == "__main__":
    main()
