#!/usr/bin/python3
"""Plots the curves of a metrics.csv written by the alexnet_transfer example.

Usage: plot_metrics.py METRICS_CSV OUTPUT_PNG [--title TITLE]

Three panels: the losses (training objective; cross entropy of a training subset and of the
test set, both in eval mode), the accuracies (training, running in training mode; training
subset in eval mode; test; balanced test) and the per-class test accuracy of the last epoch.
Renders off-screen (Agg), so it works without a display.
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from plotting import metrics_plot_main, read_csv_rows, style_epoch_axes  # noqa: E402

REQUIRED_COLUMNS = ("epoch", "train_loss", "train_accuracy", "train_eval_loss", "train_eval_accuracy",
                    "test_loss", "test_accuracy", "balanced_accuracy")
PER_CLASS_PREFIX = "test_accuracy_"


def read_metrics(path):
    """Returns {column: [float, ...]} of the required and the per-class columns of the CSV at `path`."""
    rows = read_csv_rows(path, REQUIRED_COLUMNS)
    wanted = list(REQUIRED_COLUMNS) + [name for name in rows[0] if name.startswith(PER_CLASS_PREFIX)]
    return {name: [float(row[name]) for row in rows] for name in wanted}


def plot(metrics, output, title):
    """Draws the three panels and saves a PNG."""
    classes = [name[len(PER_CLASS_PREFIX):] for name in metrics if name.startswith(PER_CLASS_PREFIX)]
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
    style_epoch_axes((loss_axes, accuracy_axes), fontsize="small")
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


if __name__ == "__main__":
    metrics_plot_main("plot_metrics.py", __doc__.splitlines()[0], read_metrics, plot)
