#!/usr/bin/python3
"""Plots the loss and accuracy curves of a metrics.csv written by an example trainer.

Usage: plot_metrics.py METRICS_CSV OUTPUT_PNG [--title TITLE]

The CSV needs the columns epoch, train_loss, test_loss, test_accuracy and
balanced_accuracy. Renders off-screen (Agg), so it works without a display.
"""
import argparse
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

REQUIRED_COLUMNS = ("epoch", "train_loss", "test_loss", "test_accuracy", "balanced_accuracy")


def read_metrics(path):
    """Returns {column: [float, ...]} for the required columns of the CSV at `path`."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return {name: [float(row[name]) for row in rows] for name in REQUIRED_COLUMNS}


def plot(metrics, output, title):
    """Draws loss (left) and accuracy (right) against the epoch and saves a PNG."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    epochs = metrics["epoch"]
    loss_axes.plot(epochs, metrics["train_loss"], marker="o", label="train")
    loss_axes.plot(epochs, metrics["test_loss"], marker="o", label="test")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss")
    accuracy_axes.plot(epochs, metrics["test_accuracy"], marker="o", label="accuracy")
    accuracy_axes.plot(epochs, metrics["balanced_accuracy"], marker="s", linestyle="--", label="balanced accuracy")
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title)
    figure.savefig(output, dpi=120)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics_csv")
    parser.add_argument("output_png")
    parser.add_argument("--title", default="")
    arguments = parser.parse_args()
    try:
        metrics = read_metrics(arguments.metrics_csv)
    except (OSError, ValueError) as error:
        sys.exit(f"plot_metrics.py: error: {error}")
    plot(metrics, arguments.output_png, arguments.title)


if __name__ == "__main__":
    main()
