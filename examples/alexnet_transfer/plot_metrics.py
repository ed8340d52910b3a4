#!/usr/bin/python3
"""Plots the curves of a metrics.csv written by the alexnet_transfer example.

Usage: plot_metrics.py METRICS_CSV OUTPUT_PNG [--title TITLE]

Three panels: the losses (training objective; cross entropy of a training subset and of the
test set, both in eval mode), the accuracies (training, running in training mode; training
subset in eval mode; test; balanced test) and the per-class test accuracy of the last epoch.
Renders off-screen (Agg), so it works without a display.
"""
import argparse
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

REQUIRED_COLUMNS = ("epoch", "train_loss", "train_accuracy", "train_eval_loss", "train_eval_accuracy",
                    "test_loss", "test_accuracy", "balanced_accuracy")
PER_CLASS_PREFIX = "test_accuracy_"


def read_metrics(path):
    """Returns ({column: [float, ...]}, [class names]) from the CSV at `path`."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    classes = [name[len(PER_CLASS_PREFIX):] for name in columns if name.startswith(PER_CLASS_PREFIX)]
    wanted = list(REQUIRED_COLUMNS) + [PER_CLASS_PREFIX + name for name in classes]
    return {name: [float(row[name]) for row in rows] for name in wanted}, classes


def plot(metrics, classes, output, title):
    """Draws the three panels and saves a PNG."""
    figure, (loss_axes, accuracy_axes, class_axes) = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    epochs = metrics["epoch"]
    loss_axes.plot(epochs, metrics["train_loss"], marker="o", label="training objective (train mode)")
    loss_axes.plot(epochs, metrics["train_eval_loss"], marker="o", label="train subset CE (eval mode)")
    loss_axes.plot(epochs, metrics["test_loss"], marker="o", label="test CE")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss")
    accuracy_axes.plot(epochs, metrics["train_accuracy"], marker="o", label="train (train mode, running)")
    accuracy_axes.plot(epochs, metrics["train_eval_accuracy"], marker="o", label="train subset (eval mode)")
    accuracy_axes.plot(epochs, metrics["test_accuracy"], marker="o", label="test")
    accuracy_axes.plot(epochs, metrics["balanced_accuracy"], marker="s", linestyle="--", label="test, balanced")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    last = [metrics[PER_CLASS_PREFIX + name][-1] for name in classes]
    class_axes.bar(range(len(classes)), last)
    class_axes.set_xticks(range(len(classes)))
    class_axes.set_xticklabels(classes, rotation=45, ha="right")
    class_axes.set(ylim=(0, 1), ylabel="test accuracy", title=f"Per class, epoch {int(epochs[-1])}")
    class_axes.grid(alpha=0.3, axis="y")
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
        metrics, classes = read_metrics(arguments.metrics_csv)
    except (OSError, ValueError) as error:
        sys.exit(f"plot_metrics.py: error: {error}")
    plot(metrics, classes, arguments.output_png, arguments.title)


if __name__ == "__main__":
    main()
