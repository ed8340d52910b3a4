#!/usr/bin/python3
"""Draws the long-tail comparison: balanced accuracy and rarest-3 accuracy per loss.

Usage: plot_long_tail.py SUMMARY_CSV RUNS_CSV OUTPUT_PNG [--title TITLE]

SUMMARY_CSV (summary.csv of the long_tail trainer) gives each loss's mean and standard
deviation over the seeds, drawn as bars with error bars; RUNS_CSV (runs.csv) gives every
seed's result, drawn as dots on the bars, so the spread is visible. Renders off-screen (Agg).
"""
import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from plotting import read_csv_rows, save_png  # noqa: E402

SUMMARY_COLUMNS = ("loss", "label", "seeds", "balanced_accuracy_mean", "balanced_accuracy_std",
                   "rare3_accuracy_mean", "rare3_accuracy_std")
RUNS_COLUMNS = ("loss", "seed", "balanced_accuracy", "rare3_accuracy")


def plot(summary, runs, output, title):
    """Two panels of horizontal bars (one per loss), mean ± std, with the seeds as dots."""
    labels = [row["label"] for row in summary]
    positions = list(range(len(summary)))
    seeds = max(int(row["seeds"]) for row in summary)
    height = max(2.5, 0.45 * len(summary) + 1.2)
    figure, axes_pair = plt.subplots(1, 2, figsize=(11, height), sharey=True, constrained_layout=True)
    panels = (("balanced_accuracy", "balanced test accuracy (%)"), ("rare3_accuracy", "rarest-3 classes accuracy (%)"))
    for axes, (metric, xlabel) in zip(axes_pair, panels):
        means = [100 * float(row[f"{metric}_mean"]) for row in summary]
        stds = [100 * float(row[f"{metric}_std"]) for row in summary]
        axes.barh(positions, means, xerr=stds if seeds > 1 else None, color="tab:blue", alpha=0.6, capsize=3)
        for position, row in zip(positions, summary):
            values = [100 * float(run[metric]) for run in runs if run["loss"] == row["loss"]]
            axes.plot(values, [position] * len(values), "o", color="black", markersize=3)
        for position, mean in zip(positions, means):
            axes.text(mean, position + 0.3, f" {mean:.1f}", va="center", fontsize=8)
        lowest = min(min(means) - max(stds + [0]) - 5, 100)
        axes.set_xlim(max(0, lowest), 100)
        axes.set_xlabel(xlabel)
        axes.grid(axis="x", alpha=0.3)
    axes_pair[0].set_yticks(positions)
    axes_pair[0].set_yticklabels(labels)
    axes_pair[0].invert_yaxis()
    subtitle = f"bars: mean ± std over {seeds} seeds, dots: seeds" if seeds > 1 else "one seed"
    figure.suptitle(f"{title}\n{subtitle}" if title else subtitle)
    save_png(figure, output, dpi=110)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary_csv")
    parser.add_argument("runs_csv")
    parser.add_argument("output_png")
    parser.add_argument("--title", default="")
    arguments = parser.parse_args()
    try:
        summary = read_csv_rows(arguments.summary_csv, SUMMARY_COLUMNS)
        runs = read_csv_rows(arguments.runs_csv, RUNS_COLUMNS)
    except (OSError, ValueError) as error:
        sys.exit(f"plot_long_tail.py: error: {error}")
    plot(summary, runs, arguments.output_png, arguments.title)


if __name__ == "__main__":
    main()
