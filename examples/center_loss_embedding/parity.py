#!/usr/bin/env python3
"""Puts the center-loss trainer (center_loss_embedding --recipe reference) beside its PyTorch
twin (reference.py): for each run (cross entropy, CE + lambda * center loss) the test accuracy
and the intra/inter ratio, mean +- sample std over the seeds on each side, the difference, and
whether the accuracy meets the parity target (within 0.5 point or one PyTorch standard
deviation).

    parity.py TORCHLOSS_DIR PYTORCH_DIR --output-dir DIR [--check-trajectories RTOL] [--no-plot]

Each side's directory holds one seed_S folder per seed (summary.csv, <run>/metrics.csv,
<run>/features.csv), as both programs write them. Writes DIR/parity.csv, DIR/parity.md and
DIR/parity.png (the 2-D test features of the first common seed, torchloss above PyTorch).
With --check-trajectories it also compares every run's metrics.csv epoch by epoch and exits 1
when a training loss differs by more than RTOL (relative): with the same seed both start from
the same weights and batches, so on a short run they must follow the same curve."""
import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from plotting import (check_same_curves, mean_std, parity_columns, parity_parser, read_csv_rows,  # noqa: E402
                      side_cells, write_markdown_table, write_parity_csv)

TARGET_POINTS = 0.5
SUMMARY_COLUMNS = ["run", "center_lambda", "center_alpha", "test_accuracy", "intra_inter_ratio"]
METRICS_COLUMNS = ["epoch", "train_loss"]


def seed_dirs(directory):
    """{seed: path} of the seed_S folders under `directory`."""
    found = {os.path.basename(path)[len("seed_"):]: path for path in glob.glob(os.path.join(directory, "seed_*"))}
    if not found:
        raise ValueError(f"{directory}: no seed_S folder")
    return found


def read_side(directory):
    """{seed: {run: summary row}} of one side."""
    return {seed: {row["run"]: row for row in read_csv_rows(os.path.join(path, "summary.csv"), SUMMARY_COLUMNS)}
            for seed, path in seed_dirs(directory).items()}


def label(row):
    if float(row["center_lambda"]) <= 0:
        return "cross entropy"
    return f"CE + {float(row['center_lambda']):g} · center loss (α = {float(row['center_alpha']):g})"


def summarize(ours, theirs):
    """One row per run present on both sides for the common seeds."""
    seeds = sorted(set(ours) & set(theirs), key=int)
    if not seeds:
        raise ValueError("no seed has runs on both sides")
    runs = [run for run in ours[seeds[0]] if all(run in ours[s] and run in theirs[s] for s in seeds)]
    rows = []
    for run in runs:
        row = {"run": run, "label": label(ours[seeds[0]][run]), "seeds": len(seeds)}
        for key, column, scale in (("accuracy", "test_accuracy", 100.0), ("ratio", "intra_inter_ratio", 1.0)):
            for side, data in (("torchloss", ours), ("pytorch", theirs)):
                row[f"{key}_{side}"], row[f"{key}_{side}_std"] = mean_std(
                    [scale * float(data[s][run][column]) for s in seeds])
            row[f"{key}_difference"] = row[f"{key}_torchloss"] - row[f"{key}_pytorch"]
        row["within_target"] = abs(row["accuracy_difference"]) <= max(TARGET_POINTS, row["accuracy_pytorch_std"])
        rows.append(row)
    return rows, seeds


def write_table(rows, directory):
    columns = ["run", "label", "seeds"] + parity_columns(("accuracy", "ratio")) + ["within_target"]
    write_parity_csv(os.path.join(directory, "parity.csv"), columns, rows)
    header = ["run", "seeds", "test accuracy, torchloss (%)", "test accuracy, PyTorch (%)", "difference (points)",
              "within target", "intra/inter, torchloss", "intra/inter, PyTorch"]
    cells = [[row["label"], str(row["seeds"])] + side_cells(row, "accuracy") +
             [f"{row['accuracy_difference']:+.2f}", "yes" if row["within_target"] else "no"] +
             side_cells(row, "ratio", digits=3) for row in rows]
    return write_markdown_table(os.path.join(directory, "parity.md"), header,
                                ["---", "---:", "---:", "---:", "---:", ":---:", "---:", "---:"], cells)


def plot(ours_dir, theirs_dir, seed, runs, path):
    """The 2-D test features of `seed`: one panel per run, torchloss's row above PyTorch's."""
    from plot_embeddings import plot_grid

    panels = []
    for side, directory in (("torchloss", ours_dir), ("PyTorch", theirs_dir)):
        folder = os.path.join(directory, f"seed_{seed}")
        summary = {row["run"]: row for row in read_csv_rows(os.path.join(folder, "summary.csv"), SUMMARY_COLUMNS)}
        panels.append([(dict(summary[run], side=side),
                        read_csv_rows(os.path.join(folder, run, "features.csv"), ("x", "y", "label")))
                       for run in runs])
    plot_grid(panels, path)


def check_trajectories(ours_dir, theirs_dir, rtol):
    """Exits 1 unless both sides hold the same (seed, run, epoch) rows with training losses
    within rtol of each other."""
    def rows(directory):
        result = []
        for seed, path in seed_dirs(directory).items():
            for metrics in sorted(glob.glob(os.path.join(path, "*", "metrics.csv"))):
                run = os.path.basename(os.path.dirname(metrics))
                result += [dict(row, seed=seed, run=run) for row in read_csv_rows(metrics, METRICS_COLUMNS)]
        return result

    check_same_curves(rows(ours_dir), rows(theirs_dir), ["seed", "run", "epoch"], rtol, "parity.py")


def main(argv):
    parser = parity_parser(__doc__, "seed_S folders of center_loss_embedding --recipe reference")
    args = parser.parse_args(argv)
    try:
        if args.check_trajectories is not None:
            check_trajectories(args.torchloss_dir, args.pytorch_dir, args.check_trajectories)
        rows, seeds = summarize(read_side(args.torchloss_dir), read_side(args.pytorch_dir))
        if not rows:
            raise ValueError("no run is on both sides")
        os.makedirs(args.output_dir, exist_ok=True)
        print(write_table(rows, args.output_dir))
        if not args.no_plot:
            path = os.path.join(args.output_dir, "parity.png")
            plot(args.torchloss_dir, args.pytorch_dir, seeds[0], [row["run"] for row in rows], path)
            print(f"plot: {path}")
    except (OSError, ValueError, KeyError) as error:
        sys.exit(f"parity.py: error: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
