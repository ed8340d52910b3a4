#!/usr/bin/env python3
"""Puts the long-tail comparison of torchloss (long_tail --recipe reference) beside its PyTorch
twin (reference.py): one table, mean +- sample std over the seeds for every loss, the
difference, whether it meets the parity target (within 0.5 point or one PyTorch standard
deviation), and the recall of Shirt (the class that decides the balanced accuracy).

    parity.py TORCHLOSS_DIR PYTORCH_DIR --output-dir DIR [--check-trajectories RTOL] [--no-plot]

Writes DIR/parity.csv, DIR/parity.md and DIR/parity.png. With --check-trajectories it also
compares the two runs' metrics.csv epoch by epoch and exits 1 when a training loss differs by
more than RTOL (relative): with the same seed both start from the same weights and batches, so
on a short run they must follow the same curve."""
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from plotting import (check_same_curves, mean_std, parity_columns, parity_parser, read_csv_rows,  # noqa: E402
                      side_cells, write_markdown_table, write_parity_csv)

SHIRT = 6  # Fashion-MNIST class 6
TARGET_POINTS = 0.5


def read_runs(directory):
    """{loss: {"label": str, seed: {"balanced": x, "rare": x, "shirt": x}}} from runs.csv and per_class.csv."""
    runs = read_csv_rows(os.path.join(directory, "runs.csv"), ["loss", "label", "seed", "balanced_accuracy",
                                                               "rare3_accuracy"])
    per_class = read_csv_rows(os.path.join(directory, "per_class.csv"), ["loss", "seed", f"class_{SHIRT}"])
    shirt = {(row["loss"], row["seed"]): float(row[f"class_{SHIRT}"]) for row in per_class}
    result = {}
    for row in runs:
        entry = result.setdefault(row["loss"], {"label": row["label"], "seeds": {}})
        entry["seeds"][row["seed"]] = {"balanced": float(row["balanced_accuracy"]),
                                       "rare": float(row["rare3_accuracy"]),
                                       "shirt": shirt.get((row["loss"], row["seed"]), math.nan)}
    return result


def summarize(ours, theirs):
    """One row per loss present in both: means, stds, the difference and the paired differences."""
    rows = []
    for loss, entry in ours.items():
        if loss not in theirs:
            continue
        seeds = sorted(set(entry["seeds"]) & set(theirs[loss]["seeds"]), key=int)
        if not seeds:
            continue
        row = {"loss": loss, "label": entry["label"], "seeds": len(seeds)}
        for key in ("balanced", "rare", "shirt"):
            a = [100 * entry["seeds"][s][key] for s in seeds]
            b = [100 * theirs[loss]["seeds"][s][key] for s in seeds]
            row[f"{key}_torchloss"], row[f"{key}_torchloss_std"] = mean_std(a)
            row[f"{key}_pytorch"], row[f"{key}_pytorch_std"] = mean_std(b)
            row[f"{key}_difference"] = row[f"{key}_torchloss"] - row[f"{key}_pytorch"]
        paired = [100 * (entry["seeds"][s]["balanced"] - theirs[loss]["seeds"][s]["balanced"]) for s in seeds]
        row["balanced_max_seed_difference"] = max(abs(d) for d in paired)
        row["within_target"] = abs(row["balanced_difference"]) <= max(TARGET_POINTS, row["balanced_pytorch_std"])
        rows.append(row)
    return rows


def write_table(rows, directory):
    columns = (["loss", "label", "seeds"] + parity_columns(("balanced", "rare", "shirt")) +
               ["balanced_max_seed_difference", "within_target"])
    write_parity_csv(os.path.join(directory, "parity.csv"), columns, rows)
    header = ["loss", "seeds", "balanced acc., torchloss (%)", "balanced acc., PyTorch (%)", "difference (points)",
              "largest per-seed difference", "within target", "Shirt recall, torchloss (%)",
              "Shirt recall, PyTorch (%)"]
    cells = [[row["label"], str(row["seeds"])] + side_cells(row, "balanced") +
             [f"{row['balanced_difference']:+.2f}", f"{row['balanced_max_seed_difference']:.2f}",
              "yes" if row["within_target"] else "no"] + side_cells(row, "shirt") for row in rows]
    return write_markdown_table(os.path.join(directory, "parity.md"), header,
                                ["---", "---:", "---:", "---:", "---:", "---:", ":---:", "---:", "---:"], cells)


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from plotting import save_png

    figure, axes_list = plt.subplots(1, 2, figsize=(13, 4.8), sharey=False)
    positions = range(len(rows))
    for axes, key, name in ((axes_list[0], "balanced", "balanced accuracy (%)"),
                            (axes_list[1], "shirt", "Shirt recall (%)")):
        for offset, side, colour in ((-0.2, "torchloss", "tab:blue"), (0.2, "pytorch", "tab:orange")):
            axes.bar([p + offset for p in positions], [r[f"{key}_{side}"] for r in rows], width=0.4,
                     yerr=[r[f"{key}_{side}_std"] for r in rows], capsize=3, color=colour,
                     label="torchloss (C++)" if side == "torchloss" else "PyTorch")
        axes.set_xticks(list(positions))
        axes.set_xticklabels([r["loss"] for r in rows], rotation=35, ha="right")
        axes.set_ylabel(name)
        axes.grid(axis="y", alpha=0.3)
        axes.legend(loc="lower right")
    axes_list[0].set_ylim(bottom=max(0, min(r["balanced_pytorch"] for r in rows) - 15))
    figure.suptitle(title)
    figure.tight_layout()
    save_png(figure, path)


def check_trajectories(ours_dir, theirs_dir, rtol):
    """Exits 1 unless both metrics.csv hold the same (loss, seed, epoch) rows with training
    losses within rtol of each other."""
    columns = ["loss", "seed", "epoch", "train_loss"]
    check_same_curves(*(read_csv_rows(os.path.join(d, "metrics.csv"), columns) for d in (ours_dir, theirs_dir)),
                          ["loss", "seed", "epoch"], rtol, "parity.py")


def main(argv):
    parser = parity_parser(__doc__, "output of long_tail --recipe reference")
    parser.add_argument("--title", default="Long-tailed Fashion-MNIST, reference recipe: torchloss vs PyTorch")
    args = parser.parse_args(argv)
    try:
        if args.check_trajectories is not None:
            check_trajectories(args.torchloss_dir, args.pytorch_dir, args.check_trajectories)
        rows = summarize(read_runs(args.torchloss_dir), read_runs(args.pytorch_dir))
    except (OSError, ValueError) as error:
        sys.exit(f"parity.py: error: {error}")
    if not rows:
        sys.exit("parity.py: error: no loss has runs on both sides")
    os.makedirs(args.output_dir, exist_ok=True)
    print(write_table(rows, args.output_dir))
    if not args.no_plot:
        plot(rows, os.path.join(args.output_dir, "parity.png"), args.title)
        print(f"plot: {os.path.join(args.output_dir, 'parity.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
