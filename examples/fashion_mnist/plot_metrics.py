#!/usr/bin/python3
"""Plots the loss and accuracy curves of a metrics.csv written by an example trainer.

Usage: plot_metrics.py METRICS_CSV OUTPUT_PNG [--title TITLE]

The CSV needs the columns epoch, train_loss, test_loss, test_accuracy and
balanced_accuracy. Renders off-screen (Agg), so it works without a display.
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from plotting import metrics_plot_main, read_columns, style_epoch_axes  # noqa: E402

REQUIRED_COLUMNS = ("epoch", "train_loss", "test_loss", "test_accuracy", "balanced_accuracy")


def read_metrics(path):
    """Returns {column: [float, ...]} for the required columns of the CSV at `path`."""
    return read_columns(path, REQUIRED_COLUMNS)


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
    style_epoch_axes((loss_axes, accuracy_axes))
    if title:
        figure.suptitle(title)
    figure.savefig(output, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    metrics_plot_main("plot_metrics.py", __doc__.splitlines()[0], read_metrics, plot)
