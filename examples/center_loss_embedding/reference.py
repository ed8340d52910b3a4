#!/usr/bin/env python3
"""The center-loss trainer's reference recipe in plain PyTorch: the twin of
`center_loss_embedding --recipe reference`, for checking that CE + lambda * center loss trained
in C++ with torchloss::CenterLoss lands where the same recipe lands in Python.

Same data (all of Fashion-MNIST, the same pixel normalisation), same network (conv 3x3 32 -> BN
-> ReLU -> pool -> conv 3x3 64 -> BN -> ReLU -> pool -> fc 2 -> PReLU -> linear 10), same
optimizer (SGD, momentum 0.9, weight decay 5e-4, per-step cosine schedule; peak lr 0.005, the
trainer's default for its 2-D network under this recipe), batch 128, 12 epochs, and the same
seed policy: torch.manual_seed(seed) before each run, the network built in the C++ order, one
torch.randperm(N) per epoch -- so with the same LibTorch release both sides start from the
same weights and see the same batches.

The center loss is written here from Wen et al. (ECCV 2016): L_C = 1/N sum_i ||x_i - c_{y_i}||^2 / 2
on zero-initialised centers that are not parameters; after each backward, the centers of the
classes in the batch move by c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j), from
the features and centers of the forward pass. No torchloss code is used.

For every seed it writes OUTPUT_DIR/seed_S/ as the C++ trainer does: summary.csv, and per run
(ce, center) metrics.csv and features.csv, in the C++ trainer's columns.

    /usr/bin/python3 examples/center_loss_embedding/reference.py --seeds 1,2,3
    /usr/bin/python3 examples/center_loss_embedding/reference.py --seeds 1 --epochs 1 --limit 2000
"""

import argparse
import csv
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import torch_reference as ref  # noqa: E402

NUM_CLASSES = ref.NUM_CLASSES
FEATURE_DIM = 2
EMBEDDING_LEARNING_RATE = 0.005  # center_loss_embedding's peak lr under --recipe reference


class EmbeddingNet(nn.Module):
    """ConvFeatures narrowed to 2 PReLU units, then a linear classifier (main.cpp's EmbeddingNet)."""

    def __init__(self):
        super().__init__()
        self.features = ref.conv_features(32, 64, FEATURE_DIM, "prelu")
        self.classifier = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x):
        embedding = self.features(x)
        return embedding, self.classifier(embedding)


class CenterLoss:
    """Wen et al.'s center loss with the paper's alpha update of the centers."""

    def __init__(self, alpha):
        self.alpha = alpha
        self.centers = torch.zeros(NUM_CLASSES, FEATURE_DIM)

    def __call__(self, features, labels):
        """1/N sum_i ||x_i - c_{y_i}||^2 / 2; the centers are constants of the graph."""
        return 0.5 * (features - self.centers[labels]).pow(2).sum(1).mean()

    @torch.no_grad()
    def update(self, features, labels):
        """c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j) for the classes in the batch."""
        difference = self.centers[labels] - features
        sums = torch.zeros_like(self.centers).index_add_(0, labels, difference)
        counts = torch.bincount(labels, minlength=NUM_CLASSES).to(sums.dtype)
        self.centers -= self.alpha * sums / (1 + counts)[:, None]


def compactness(features, labels):
    """intra (mean distance to the class mean), inter (mean distance between class means over
    ordered pairs of present classes) and their ratio, in float64, as main.cpp."""
    x = features.double()
    counts = torch.bincount(labels, minlength=NUM_CLASSES).double()
    centers = torch.zeros(NUM_CLASSES, x.shape[1], dtype=torch.float64).index_add_(0, labels, x)
    centers = centers / counts.clamp(min=1)[:, None]
    intra = (x - centers[labels]).norm(dim=1).mean().item()
    present = centers[counts > 0]
    k = present.shape[0]
    inter = torch.cdist(present, present).sum().item() / (k * (k - 1)) if k > 1 else 0.0
    return intra, inter, (intra / inter if inter > 0 else math.nan)


def evaluate(model, images, labels):
    """Test features, accuracy, balanced accuracy and compactness (eval mode, no grad)."""
    model.eval()
    with torch.no_grad():
        outputs = [model(images[i:i + 1000]) for i in range(0, len(images), 1000)]
    model.train()
    features = torch.cat([embedding for embedding, _ in outputs])
    predictions = torch.cat([logits.argmax(1) for _, logits in outputs])
    recalls = [(predictions[labels == c] == c).double().mean().item() for c in range(NUM_CLASSES)
               if (labels == c).any()]
    accuracy = (predictions == labels).double().mean().item()
    return features, accuracy, sum(recalls) / len(recalls), compactness(features, labels)


def write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def train_run(name, lam, seed, data, args):
    """One run: cross entropy, plus lam * center loss when lam > 0. Returns its summary row."""
    train_images, train_labels, test_images, test_labels = data
    torch.manual_seed(seed)
    model = EmbeddingNet()
    center = CenterLoss(args.center_alpha)
    directory = os.path.join(args.output_dir, f"seed_{seed}", name)
    metrics = []
    state = {}  # the last batch's features and labels (for the center update), the last test features

    def batch_loss(x, y, epoch):
        embedding, logits = model(x)
        loss = F.cross_entropy(logits, y)
        if lam > 0:
            loss = loss + lam * center(embedding, y)
            state.update(features=embedding.detach(), labels=y)
        return loss

    def end_of_epoch(epoch, train_loss, seconds):
        features, accuracy, balanced, (intra, inter, ratio) = evaluate(model, test_images, test_labels)
        state.update(test_features=features)
        metrics.append([epoch, train_loss, accuracy, balanced, intra, inter, ratio, seconds])
        print(f"{name:<6} seed {seed} epoch {epoch}/{args.epochs}  train_loss {train_loss:.4f}  "
              f"test_accuracy {accuracy:.4f}  intra/inter {ratio:.4f}  {seconds:.1f} s", flush=True)

    # The centers move after backward, from the forward pass's features (torchloss: inside backward).
    after_backward = (lambda: center.update(state["features"], state["labels"])) if lam > 0 else None
    train_seconds = ref.train(model, train_images, train_labels, args, f"{name} seed {seed}", batch_loss,
                              after_backward, end_of_epoch)
    features = state["test_features"]
    _, _, accuracy, balanced, intra, inter, ratio, _ = metrics[-1]
    write_csv(os.path.join(directory, "metrics.csv"),
              ["epoch", "train_loss", "test_accuracy", "balanced_accuracy", "intra_class", "inter_class",
               "intra_inter_ratio", "epoch_seconds"], metrics)
    write_csv(os.path.join(directory, "features.csv"), ["x", "y", "label"],
              [[f"{a:.9g}", f"{b:.9g}", c] for (a, b), c in zip(features.double().tolist(), test_labels.tolist())])
    return [name, lam, args.center_alpha if lam > 0 else 0.0, accuracy, balanced, intra, inter, ratio, train_seconds]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ref.add_common_arguments(parser, epochs=12, output_dir="results/center_loss_reference/pytorch")
    parser.set_defaults(lr=EMBEDDING_LEARNING_RATE)
    parser.add_argument("--seeds", default="1,2,3", help="Comma-separated seeds; one seed_S folder each")
    parser.add_argument("--center-lambda", type=float, default=0.5, help="Weight lambda of the center loss")
    parser.add_argument("--center-alpha", type=float, default=0.5, help="Update rate alpha of the centers")
    args = parser.parse_args(argv)
    ref.parse_seeds(parser, args)
    ref.check_positive(parser, args, ("epochs", "batch_size"))
    if not args.center_lambda > 0:
        parser.error("--center-lambda must be > 0")
    if not 0 <= args.center_alpha <= 1:
        parser.error("--center-alpha must be in [0, 1]")
    return args


def main(argv):
    args = parse_args(argv)
    data = ref.load_data(args)
    print(f"Fashion-MNIST: {len(data[1])} training / {len(data[3])} test images; torch {torch.__version__}",
          flush=True)
    for seed in dict.fromkeys(args.seeds):
        rows = [train_run("ce", 0.0, seed, data, args), train_run("center", args.center_lambda, seed, data, args)]
        write_csv(os.path.join(args.output_dir, f"seed_{seed}", "summary.csv"),
                  ["run", "center_lambda", "center_alpha", "test_accuracy", "balanced_accuracy", "intra_class",
                   "inter_class", "intra_inter_ratio", "train_seconds"], rows)
    return 0


if __name__ == "__main__":
    ref.main_guard("reference.py", main)
