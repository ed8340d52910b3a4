#!/usr/bin/python3
"""Draws the metric-learning comparison: a bar chart of NCM accuracy, Recall@1 and MAP@R per loss
(mean with the standard deviation over the seeds as error bars) and, when 2-D test embeddings
are given, one scatter panel per loss.

Usage: plot_metric_learning.py SUMMARY_CSV OUTPUT_PNG [--features features_<loss>.csv ...]

Renders off-screen (Agg).
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
METRICS = (("accuracy", "NCM accuracy"), ("recall_at_1", "Recall@1"), ("map_at_r", "MAP@R"))
SUMMARY_COLUMNS = ("loss", "label", "seeds") + tuple(f"{m}_{s}" for m, _ in METRICS for s in ("mean", "std"))


def loss_of(path):
    """The loss key of a features_<loss>.csv path."""
    name = os.path.splitext(os.path.basename(path))[0]
    return name[len("features_"):] if name.startswith("features_") else name


def plot(summary, features, output):
    panels = 1 + len(features)
    columns = min(panels, 4)
    rows = (panels + columns - 1) // columns
    figure, axes_grid = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.4 * rows), squeeze=False)
    axes_list = [axes for row in axes_grid for axes in row]
    bars = axes_list[0]
    width = 0.8 / len(METRICS)
    for k, (metric, title) in enumerate(METRICS):
        means = [100 * float(row[f"{metric}_mean"]) for row in summary]
        stds = [100 * float(row[f"{metric}_std"]) for row in summary]
        positions = [i + (k - 1) * width for i in range(len(summary))]
        bars.bar(positions, means, width, yerr=stds, capsize=2, label=title)
    bars.set_xticks(range(len(summary)))
    bars.set_xticklabels([row["loss"] for row in summary], rotation=30)
    bars.set_ylabel("%")
    bars.set_title("test set (mean ± std over seeds)", fontsize=10)
    bars.legend(fontsize=8)
    bars.grid(axis="y", alpha=0.3)
    colours = plt.get_cmap("tab10")
    labels_by_loss = {row["loss"]: row["label"] for row in summary}
    for axes, (path, points) in zip(axes_list[1:], features):
        for label, name in enumerate(CLASS_NAMES):
            xy = [(float(p["x"]), float(p["y"])) for p in points if int(p["label"]) == label]
            if xy:
                xs, ys = zip(*xy)
                axes.scatter(xs, ys, s=2, alpha=0.5, color=colours(label), label=name, rasterized=True)
        axes.set_title(labels_by_loss.get(loss_of(path), loss_of(path)), fontsize=10)
        axes.set_aspect("equal", adjustable="datalim")
        axes.grid(alpha=0.3)
    for axes in axes_list[panels:]:
        axes.axis("off")
    if features:
        handles, labels = axes_list[1].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=5, markerscale=6, frameon=False)
        figure.tight_layout(rect=(0, 0.06, 1, 1))
    else:
        figure.tight_layout()
    save_png(figure, output, dpi=90)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary_csv")
    parser.add_argument("output_png")
    parser.add_argument("--features", nargs="+", default=[])
    arguments = parser.parse_args()
    try:
        summary = read_csv_rows(arguments.summary_csv, SUMMARY_COLUMNS)
        features = [(path, read_csv_rows(path, ("x", "y", "label"))) for path in arguments.features]
    except (OSError, ValueError) as error:
        sys.exit(f"plot_metric_learning.py: error: {error}")
    plot(summary, features, arguments.output_png)


if __name__ == "__main__":
    main()
