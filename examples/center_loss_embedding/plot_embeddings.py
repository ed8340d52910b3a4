#!/usr/bin/python3
"""Draws the 2-D test features of the center-loss runs as scatter plots, side by side.

Usage: plot_embeddings.py SUMMARY_CSV OUTPUT_PNG --features FEATURES_CSV [FEATURES_CSV ...]

Each FEATURES_CSV (x, y, label) is one run, in the order of SUMMARY_CSV's rows (run,
center_lambda, center_alpha, test_accuracy, intra_inter_ratio, ...), which give the panel
titles. Points are coloured by Fashion-MNIST class. Renders off-screen (Agg).
"""
import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from plotting import read_csv_rows, save_png  # noqa: E402

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SUMMARY_COLUMNS = ("run", "center_lambda", "center_alpha", "test_accuracy", "intra_inter_ratio")


def title_of(run):
    """The panel title of one summary row (with its "side", when it has one, in front)."""
    name = "cross entropy"
    if float(run["center_lambda"]) > 0:
        name += f" + {float(run['center_lambda']):g}·center loss (α = {float(run['center_alpha']):g})"
    if run.get("side"):
        name = f"{run['side']}: {name}"
    return (f"{name}\ntest accuracy {100 * float(run['test_accuracy']):.1f}%, "
            f"intra/inter {float(run['intra_inter_ratio']):.3f}")


def plot_grid(panels, output):
    """`panels`: rows of (summary row, feature rows) pairs, one scatter panel each, classes in
    the tab10 colours, a shared legend below."""
    n_rows, n_columns = len(panels), max(len(row) for row in panels)
    figure, axes_grid = plt.subplots(n_rows, n_columns, figsize=(6 * n_columns, 6 * n_rows + 0.4), squeeze=False)
    colours = plt.get_cmap("tab10")
    for axes_row, panel_row in zip(axes_grid, panels):
        for axes, (run, rows) in zip(axes_row, panel_row):
            for label, name in enumerate(CLASS_NAMES):
                points = [(float(row["x"]), float(row["y"])) for row in rows if int(row["label"]) == label]
                if points:
                    xs, ys = zip(*points)
                    axes.scatter(xs, ys, s=2, alpha=0.5, color=colours(label), label=name, rasterized=True)
            axes.set_title(title_of(run), fontsize=10)
            axes.set_xlabel("feature 1")
            axes.set_ylabel("feature 2")
            axes.grid(alpha=0.3)
    handles, labels = axes_grid[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=5, markerscale=6, frameon=False)
    figure.tight_layout(rect=(0, 0.08 / n_rows, 1, 1))
    save_png(figure, output, dpi=100)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary_csv")
    parser.add_argument("output_png")
    parser.add_argument("--features", nargs="+", required=True)
    arguments = parser.parse_args()
    try:
        summary = read_csv_rows(arguments.summary_csv, SUMMARY_COLUMNS)
        features = [read_csv_rows(path, ("x", "y", "label")) for path in arguments.features]
        if len(summary) != len(features):
            raise ValueError(f"{arguments.summary_csv} has {len(summary)} runs but {len(features)} feature files "
                             "were given")
    except (OSError, ValueError) as error:
        sys.exit(f"plot_embeddings.py: error: {error}")
    plot_grid([list(zip(summary, features))], arguments.output_png)


if __name__ == "__main__":
    main()
