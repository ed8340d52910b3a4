"""What the PyTorch twins of the trainers share (examples/long_tail/reference.py and
examples/center_loss_embedding/reference.py): Fashion-MNIST read and normalised exactly as
examples/common/idx.cpp and fashion_mnist.cpp, the long-tailed subset of long_tail.cpp, the
ConvFeatures network of models.cpp built in the same order (so that one seed draws the same
initial weights in both languages), and the reference recipe of recipe.hpp: SGD, momentum 0.9,
weight decay 5e-4, a per-step cosine schedule, and one torch.randperm per epoch for the batch
order, as train_one_epoch. Plain PyTorch only: no torchloss code."""
import gzip
import math
import os
import struct
import sys
import time

import torch
from torch import nn

NUM_CLASSES = 10
PIXEL_MEAN = 0.2860  # examples/common/fashion_mnist.hpp
PIXEL_STD = 0.3530
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
MOMENTUM = 0.9  # examples/common/recipe.hpp, ReferenceRecipe
WEIGHT_DECAY = 5e-4


class DataError(Exception):
    """A missing or malformed data file."""


def idx_path(directory, stem):
    base = os.path.join(directory, stem)
    if not os.path.exists(base + ".gz") and os.path.exists(base):
        return base
    return base + ".gz"


def read_idx(path, expected_dims):
    """The uint8 tensor of an IDX file (gzipped or plain), checked like examples/common/idx.cpp."""
    if not os.path.exists(path):
        raise DataError(f"IDX file not found: '{path}'")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read IDX file '{path}': {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != expected_dims:
        raise DataError(f"'{path}' is not an IDX file of {expected_dims}-D unsigned bytes")
    header = 4 + 4 * expected_dims
    if len(data) < header:
        raise DataError(f"'{path}' is truncated in its header")
    dims = struct.unpack(">" + "I" * expected_dims, data[4:header])
    if len(data) - header != math.prod(dims):
        raise DataError(f"'{path}' holds {len(data) - header} data bytes, its header says {math.prod(dims)}")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(dims)


def load_split(directory, prefix, limit):
    """Images float [N, 1, 28, 28] normalised as normalize_images, labels int64 [N]."""
    images = read_idx(idx_path(directory, prefix + "-images-idx3-ubyte"), 3)
    labels = read_idx(idx_path(directory, prefix + "-labels-idx1-ubyte"), 1).to(torch.int64)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{prefix}: {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.numel() and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{prefix}: a label outside [0, {NUM_CLASSES})")
    if 0 < limit < images.shape[0]:
        images, labels = images[:limit], labels[:limit]
    # The same float32 operations in the same order as normalize_images.
    images = images.unsqueeze(1).to(torch.float32).div_(255.0).sub_(PIXEL_MEAN).div_(PIXEL_STD)
    return images, labels.clone()


def exponential_profile_counts(n_max, imbalance, num_classes):
    """Cui et al.'s profile int(n_max * IF^(-c/(C-1))), as exponential_profile_counts."""
    return [max(int(math.floor(n_max * imbalance ** (-c / (num_classes - 1)) + 1e-9)), 1) for c in range(num_classes)]


def long_tailed_indices(labels, counts):
    """The first counts[c] examples of each class c, in file order."""
    kept = [0] * len(counts)
    indices = []
    for i, c in enumerate(labels.tolist()):
        if kept[c] < counts[c]:
            kept[c] += 1
            indices.append(i)
    return torch.tensor(indices, dtype=torch.int64)


def conv_features(conv1=32, conv2=64, feature_dim=128, activation="relu"):
    """ConvFeatures: conv 3x3 - BN - ReLU - pool, twice, then fc to feature_dim and the activation.
    The layers with random weights are built last to first, as models.cpp, so that one seed
    draws the same weights as the C++ trainers."""
    fc = nn.Linear(conv2 * 7 * 7, feature_dim)
    second = nn.Conv2d(conv1, conv2, 3, padding=1, bias=False)
    first = nn.Conv2d(1, conv1, 3, padding=1, bias=False)
    layers = [first, nn.BatchNorm2d(conv1), nn.ReLU(), nn.MaxPool2d(2),
              second, nn.BatchNorm2d(conv2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), fc]
    if activation == "relu":
        layers.append(nn.ReLU())
    elif activation == "prelu":
        layers.append(nn.PReLU())
    return nn.Sequential(*layers)


def cosine_lr(peak, step, total):
    """The per-step cosine schedule of recipe.hpp: 0.5 * peak * (1 + cos(pi * step / total))."""
    return 0.5 * peak * (1.0 + math.cos(math.pi * min(step, total - 1) / total))


class ReferenceOptimizer:
    """SGD with the reference recipe's momentum, weight decay and per-step cosine schedule."""

    def __init__(self, parameters, peak, total_steps):
        self.sgd = torch.optim.SGD(parameters, lr=peak, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        self.peak, self.total, self.step_index = peak, total_steps, 0

    def zero_grad(self):
        self.sgd.zero_grad()

    def step(self):
        for group in self.sgd.param_groups:
            group["lr"] = cosine_lr(self.peak, self.step_index, self.total)
        self.sgd.step()
        self.step_index += 1


def batches(num_examples, batch_size):
    """One epoch's batches of indices: one torch.randperm, as train_one_epoch."""
    order = torch.randperm(num_examples)
    return [order[begin:begin + batch_size] for begin in range(0, num_examples, batch_size)]


def train(model, images, labels, args, run, batch_loss, after_backward=None, end_of_epoch=None):
    """The reference recipe's training loop, as train_one_epoch with RecipeOptimizer: SGD over
    args.epochs with the per-step cosine schedule, one randperm per epoch, batches of
    args.batch_size. batch_loss(x, y, epoch) returns a batch's loss; after_backward() runs
    between backward and the step; end_of_epoch(epoch, mean_loss, seconds) after every epoch.
    `run` names the run in the progress bar and errors. Returns the training seconds; raises
    RuntimeError on a non-finite loss."""
    n = len(labels)
    num_batches = (n + args.batch_size - 1) // args.batch_size
    optimizer = ReferenceOptimizer(model.parameters(), args.lr, num_batches * args.epochs)
    train_seconds = 0.0
    model.train()
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        loss_sum = 0.0
        for b, indices in enumerate(batches(n, args.batch_size)):
            x, y = images.index_select(0, indices), labels.index_select(0, indices)
            optimizer.zero_grad()
            loss = batch_loss(x, y, epoch)
            value = loss.item()
            if not math.isfinite(value):
                raise RuntimeError(f"{run}: the loss of batch {b + 1} is {value} (diverged; try a smaller learning rate)")
            loss.backward()
            if after_backward is not None:
                after_backward()
            optimizer.step()
            loss_sum += value * len(indices)
            progress(f"{run} epoch {epoch}/{args.epochs}", b + 1, num_batches, not args.no_progress)
        seconds = time.perf_counter() - start
        train_seconds += seconds
        if end_of_epoch is not None:
            end_of_epoch(epoch, loss_sum / n, seconds)
    return train_seconds


def progress(text, done, total, enabled):
    """A one-line progress bar on stderr."""
    if not enabled:
        return
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\r{text} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def add_common_arguments(parser, epochs=12, output_dir="results"):
    """The options every twin has, named as the C++ trainers' (reference recipe defaults)."""
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="Directory of the Fashion-MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05, help="Peak learning rate of the cosine schedule")
    parser.add_argument("--limit", type=int, default=0, help="Use only the first K training images (0 = all)")
    parser.add_argument("--test-limit", type=int, default=0, help="Use only the first K test images (0 = all)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--output-dir", default=output_dir)
    parser.add_argument("--no-progress", action="store_true", help="Do not draw the progress bar")


def parse_seeds(parser, args):
    """Turns args.seeds ("1,2,3") into a list of ints, or exits with a parser error."""
    try:
        args.seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    except ValueError:
        parser.error(f"--seeds: not a comma-separated list of integers: '{args.seeds}'")


def load_data(args):
    """Sets the thread count and loads (train_images, train_labels, test_images, test_labels)
    under --data-dir, --limit and --test-limit."""
    torch.set_num_threads(max(args.threads, 1))
    return (*load_split(args.data_dir, "train", args.limit), *load_split(args.data_dir, "t10k", args.test_limit))


def check_positive(parser, args, names):
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")


def main_guard(program, main):
    """Runs main(argv) and turns data and divergence errors into one line and exit status 1."""
    try:
        sys.exit(main(sys.argv[1:]))
    except (DataError, RuntimeError) as error:
        sys.exit(f"{program}: error: {error}")
