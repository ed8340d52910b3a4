#!/usr/bin/env python3
"""The long-tail comparison's reference recipe in plain PyTorch: the twin of
`long_tail --recipe reference`, for checking that a C++ trainer built on torchloss learns as
well as the same recipe in Python.

Same data (the first n_c = floor(n_max * IF^(-c/9)) training images of class c, the balanced
test set, the same pixel normalisation), same network (conv 3x3 32 -> BN -> ReLU -> pool ->
conv 3x3 64 -> BN -> ReLU -> pool -> fc 128 -> ReLU -> linear or cosine head), same optimizer
(SGD, momentum 0.9, weight decay 5e-4, per-step cosine schedule from lr 0.05), batch 128,
12 epochs, and the same seed policy: torch.manual_seed(seed), then the network is built in the
C++ trainer's order and every epoch draws torch.randperm(N) -- so with the same LibTorch
release both start from the same weights and see the same batches.

The losses are PyTorch's built-ins (cross_entropy with weights, torchvision's
sigmoid_focal_loss) or written here from their papers / reference code (focal, GHM-C as
mmdetection, LDAM as Cao et al.'s code, logit adjustment, Seesaw as mmpretrain). No torchloss
code is used. Writes runs.csv, metrics.csv and per_class.csv in the C++ trainer's columns.

    /usr/bin/python3 examples/long_tail/reference.py --output-dir results/parity/pytorch
    /usr/bin/python3 examples/long_tail/reference.py --losses ce,logit_adjusted --seeds 1 --epochs 1 --limit 6000
"""

import argparse
import csv
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import torch_reference as ref  # noqa: E402

NUM_CLASSES = ref.NUM_CLASSES
RARE_CLASSES = 3
DRW_BETA = 0.9999
LABELS = {
    "ce": "Cross entropy",
    "ce_inverse": "Weighted CE, inverse frequency",
    "ce_effective": "Weighted CE, effective number",
    "focal": "Focal",
    "weighted_focal": "Weighted focal, effective number",
    "sigmoid_focal": "Sigmoid focal (one-vs-all)",
    "ghmc": "GHM-C (one-vs-all)",
    "ldam_drw": "LDAM-DRW (cosine head)",
    "logit_adjusted": "Logit-adjusted CE",
    "logit_adjusted_drw": "Logit-adjusted CE + DRW",
    "logit_adjusted_cosine": "Logit-adjusted CE, cosine head",
    "seesaw": "Seesaw (counts learned in training)",
}


class NormedLinear(nn.Module):
    """Cao et al.'s cosine classifier; the weight is stored [C, D] (LibTorch's Linear layout,
    as torchloss::NormedLinear) so that the same seed draws the same values."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        with torch.no_grad():
            self.weight.uniform_(-1, 1).renorm_(2, 0, 1e-5).mul_(1e5)

    def forward(self, x):
        return F.normalize(x, dim=-1, eps=1e-12) @ F.normalize(self.weight, dim=1, eps=1e-12).t()


class Net(nn.Module):
    """The reference network: ConvFeatures (32, 64 channels, 128 ReLU features), then a linear
    or cosine head."""

    def __init__(self, normed_head):
        super().__init__()
        self.features = ref.conv_features(32, 64, 128, "relu")
        self.head = NormedLinear(128, NUM_CLASSES) if normed_head else nn.Linear(128, NUM_CLASSES)

    def forward(self, x):
        return self.head(self.features(x))


# --- losses, from their papers and reference code --------------------------------------------


def inverse_frequency(counts):
    inverse = 1.0 / counts.double()
    return (inverse * (len(counts) / inverse.sum())).float()


def effective_number(counts, beta):
    """Cui et al. (CVPR 2019): w_c proportional to (1 - beta) / (1 - beta^n_c), summing to C."""
    n = counts.double()
    inverse = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n))
    return (inverse * (len(counts) / inverse.sum())).float()


def focal(logits, targets, gamma, alpha=None):
    """Lin et al. (ICCV 2017), softmax form: -alpha_y (1 - p_y)^gamma log p_y, mean over N."""
    log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    if alpha is not None:
        loss = alpha[targets] * loss
    return loss.mean()


class GHMC:
    """GHM-C (Li et al., AAAI 2019) exactly as mmdetection's GHMC, on one-hot targets."""

    def __init__(self, bins, momentum, float64_norms=False):
        self.bins = bins
        self.momentum = momentum
        self.float64_norms = float64_norms
        self.edges = torch.arange(bins + 1).float() / bins
        self.edges[-1] += 1e-6
        self.acc_sum = torch.zeros(bins)

    def __call__(self, logits, targets):
        target = F.one_hot(targets, logits.shape[1]).float()
        weights = torch.zeros_like(logits)
        if self.float64_norms:  # the study of the README: g in float64, as torchloss bins it
            g = torch.abs(logits.detach().double().sigmoid() - target.double())
        else:
            g = torch.abs(logits.sigmoid().detach() - target)
        tot = max(float(target.numel()), 1.0)
        n = 0
        for i in range(self.bins):
            inds = (g >= self.edges[i]) & (g < self.edges[i + 1])
            num_in_bin = inds.sum().item()
            if num_in_bin > 0:
                if self.momentum > 0:
                    self.acc_sum[i] = self.momentum * self.acc_sum[i] + (1 - self.momentum) * num_in_bin
                    weights[inds] = tot / self.acc_sum[i]
                else:
                    weights[inds] = tot / num_in_bin
                n += 1
        if n > 0:
            weights = weights / n
        return F.binary_cross_entropy_with_logits(logits, target, weights, reduction="sum") / tot


def ldam(cosines, targets, counts, max_margin, scale, weight):
    """Cao et al.'s LDAMLoss: margins m_c proportional to n_c^(-1/4), the largest max_margin."""
    margins = 1.0 / torch.sqrt(torch.sqrt(counts.double()))
    margins = (margins * (max_margin / margins.max())).float()
    onehot = F.one_hot(targets, cosines.shape[1]).bool()
    adjusted = torch.where(onehot, cosines - margins[targets][:, None], cosines)
    return F.cross_entropy(scale * adjusted, targets, weight=weight)


def logit_adjusted(logits, targets, counts, tau, weight=None):
    """Menon et al. (ICLR 2021): cross entropy of logits + tau * log prior."""
    prior = counts.double() / counts.sum()
    return F.cross_entropy(logits + (tau * prior.log()).float(), targets, weight=weight)


class Seesaw:
    """Seesaw loss (Wang et al., CVPR 2021) as mmpretrain's softmax SeesawLoss (p 0.8, q 2, eps 0.01)."""

    def __init__(self, num_classes, p=0.8, q=2.0, eps=1e-2):
        self.p, self.q, self.eps = p, q, eps
        self.cum_samples = torch.zeros(num_classes, dtype=torch.float)

    def __call__(self, logits, targets):
        for label in targets.unique():
            self.cum_samples[label] += (targets == label).sum().item()
        onehot = F.one_hot(targets, logits.shape[1]).float()
        weights = logits.new_ones(onehot.shape)
        ratio = self.cum_samples[None, :].clamp(min=1) / self.cum_samples[:, None].clamp(min=1)
        index = (ratio < 1.0).float()
        weights = weights * (ratio.pow(self.p) * index + (1 - index))[targets, :]
        scores = F.softmax(logits.detach(), dim=1)
        self_scores = scores[torch.arange(len(scores)), targets]
        score_ratio = scores / self_scores[:, None].clamp(min=self.eps)
        index = (score_ratio > 1.0).float()
        weights = weights * (score_ratio.pow(self.q) * index + (1 - index))
        return F.cross_entropy(logits + weights.log() * (1 - onehot), targets)


def make_loss(name, counts, args):
    """A function (logits, targets, epoch) -> loss, with its own state for the run."""
    gamma = args.gamma
    if name == "ce":
        return lambda x, y, e: F.cross_entropy(x, y)
    if name == "ce_inverse":
        w = inverse_frequency(counts)
        return lambda x, y, e: F.cross_entropy(x, y, weight=w)
    if name == "ce_effective":
        w = effective_number(counts, args.beta)
        return lambda x, y, e: F.cross_entropy(x, y, weight=w)
    if name == "focal":
        return lambda x, y, e: focal(x, y, gamma)
    if name == "weighted_focal":
        w = effective_number(counts, args.beta)
        return lambda x, y, e: focal(x, y, gamma, w)
    if name == "sigmoid_focal":
        from torchvision.ops import sigmoid_focal_loss

        return lambda x, y, e: sigmoid_focal_loss(x, F.one_hot(y, x.shape[1]).to(x.dtype), alpha=0.25, gamma=gamma,
                                                  reduction="mean")
    if name == "ghmc":
        ghmc = GHMC(args.ghm_bins, args.ghm_momentum, args.ghm_float64_norms)
        return lambda x, y, e: ghmc(x, y)
    switch = drw_switch_epoch(args)
    drw = effective_number(counts, DRW_BETA)
    ones = torch.ones(NUM_CLASSES)
    if name == "ldam_drw":
        return lambda x, y, e: ldam(x, y, counts, args.ldam_max_margin, args.ldam_scale, drw if e >= switch else ones)
    if name == "logit_adjusted":
        return lambda x, y, e: logit_adjusted(x, y, counts, args.tau)
    if name == "logit_adjusted_drw":
        return lambda x, y, e: logit_adjusted(x, y, counts, args.tau, drw if e >= switch else ones)
    if name == "logit_adjusted_cosine":
        return lambda x, y, e: logit_adjusted(args.ldam_scale * x, y, counts, args.tau)
    if name == "seesaw":
        seesaw = Seesaw(NUM_CLASSES)
        return lambda x, y, e: seesaw(x, y)
    raise ValueError(name)


def drw_switch_epoch(args):
    """The first epoch of the last third (9 of 12), as long_tail --recipe reference."""
    return args.drw_epoch if args.drw_epoch > 0 else args.epochs - args.epochs // 3 + 1


# --- training -------------------------------------------------------------------------------


def evaluate(model, images, labels):
    """Test accuracy and the recall of every class."""
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(images[i:i + 1000]).argmax(1) for i in range(0, len(images), 1000)])
    model.train()
    recall = []
    for c in range(NUM_CLASSES):
        mask = labels == c
        recall.append((predictions[mask] == c).double().mean().item() if mask.any() else 0.0)
    return (predictions == labels).double().mean().item(), recall


def run_one(name, seed, data, args, writers):
    train_images, train_labels, test_images, test_labels, counts, rare = data
    torch.manual_seed(seed)
    model = Net(normed_head=name in ("ldam_drw", "logit_adjusted_cosine"))
    loss_fn = make_loss(name, counts, args)
    scores = {}

    def end_of_epoch(epoch, train_loss, seconds):
        if epoch % args.eval_every != 0 and epoch != args.epochs:
            return
        accuracy, recall = evaluate(model, test_images, test_labels)
        balanced = sum(recall) / NUM_CLASSES
        rare_accuracy = sum(recall[c] for c in rare) / len(rare)
        scores.update(accuracy=accuracy, recall=recall, balanced=balanced, rare=rare_accuracy)
        writers["metrics"].writerow([name, seed, epoch, train_loss, accuracy, balanced, rare_accuracy, seconds])

    train_seconds = ref.train(model, train_images, train_labels, args, f"{name} seed {seed}",
                              lambda x, y, epoch: loss_fn(model(x), y, epoch), end_of_epoch=end_of_epoch)
    accuracy, recall, balanced, rare_accuracy = (scores[k] for k in ("accuracy", "recall", "balanced", "rare"))
    writers["per_class"].writerow([name, seed] + recall)
    writers["runs"].writerow([name, LABELS[name], seed, balanced, rare_accuracy, accuracy, train_seconds])
    for handle in writers["files"]:
        handle.flush()
    print(f"{name:<16} seed {seed}: balanced accuracy {balanced:.4f}  rarest-3 accuracy {rare_accuracy:.4f}  "
          f"training {train_seconds:.1f} s", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ref.add_common_arguments(parser, epochs=12, output_dir="results/long_tail_reference/pytorch")
    parser.add_argument("--losses", default=",".join(LABELS), help="Comma-separated losses")
    parser.add_argument("--seeds", default="1,2,3", help="Comma-separated seeds")
    parser.add_argument("--imbalance", type=float, default=100.0)
    parser.add_argument("--beta", type=float, default=0.999, help="Beta of the effective-number weights")
    parser.add_argument("--gamma", type=float, default=2.0, help="Focusing parameter of the focal losses")
    parser.add_argument("--ghm-bins", type=int, default=30)
    parser.add_argument("--ghm-momentum", type=float, default=0.75)
    parser.add_argument("--ghm-float64-norms", action="store_true",
                        help="GHM-C: bin g = |sigmoid(x) - y| computed in float64 (torchloss's rule) instead of "
                             "mmdetection's float32")
    parser.add_argument("--ldam-max-margin", type=float, default=0.5)
    parser.add_argument("--ldam-scale", type=float, default=30.0)
    parser.add_argument("--drw-epoch", type=int, default=0, help="First DRW epoch (0 = the last third)")
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--eval-every", type=int, default=1, help="Evaluate every K epochs and after the last")
    args = parser.parse_args(argv)
    args.losses = [name for name in args.losses.split(",") if name]
    unknown = [name for name in args.losses if name not in LABELS]
    if unknown:
        parser.error(f"--losses: unknown loss '{unknown[0]}' (known: {', '.join(LABELS)})")
    ref.parse_seeds(parser, args)
    ref.check_positive(parser, args, ("epochs", "batch_size", "eval_every"))
    if args.imbalance < 1:
        parser.error("--imbalance must be >= 1")
    return args


def main(argv):
    args = parse_args(argv)
    full_images, full_labels, test_images, test_labels = ref.load_data(args)
    n_max = int(torch.bincount(full_labels, minlength=NUM_CLASSES).max())
    indices = ref.long_tailed_indices(full_labels, ref.exponential_profile_counts(n_max, args.imbalance, NUM_CLASSES))
    train_images, train_labels = full_images.index_select(0, indices), full_labels.index_select(0, indices)
    counts = torch.bincount(train_labels, minlength=NUM_CLASSES)
    rare = sorted(sorted(range(NUM_CLASSES), key=lambda c: (int(counts[c]), -c))[:RARE_CLASSES])
    print(f"long-tailed Fashion-MNIST (imbalance {args.imbalance:g}): {len(train_labels)} training images, per class "
          f"{' '.join(str(int(c)) for c in counts)}; {len(test_labels)} test images; torch {torch.__version__}",
          flush=True)
    os.makedirs(args.output_dir, exist_ok=True)
    files = [open(os.path.join(args.output_dir, name), "w", newline="", encoding="utf-8")
             for name in ("runs.csv", "metrics.csv", "per_class.csv")]
    writers = {"runs": csv.writer(files[0]), "metrics": csv.writer(files[1]), "per_class": csv.writer(files[2]),
               "files": files}
    writers["runs"].writerow(["loss", "label", "seed", "balanced_accuracy", "rare3_accuracy", "accuracy",
                              "train_seconds"])
    writers["metrics"].writerow(["loss", "seed", "epoch", "train_loss", "test_accuracy", "balanced_accuracy",
                                 "rare3_accuracy", "epoch_seconds"])
    writers["per_class"].writerow(["loss", "seed"] + [f"class_{c}" for c in range(NUM_CLASSES)])
    data = (train_images, train_labels, test_images, test_labels, counts, rare)
    for name in args.losses:
        for seed in dict.fromkeys(args.seeds):
            run_one(name, seed, data, args, writers)
    for handle in files:
        handle.close()
    return 0


if __name__ == "__main__":
    ref.main_guard("reference.py", main)
