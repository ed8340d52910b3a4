"""Fixtures of center loss (Wen et al., ECCV 2016; the authors' Caffe layer): a float64
implementation of the loss, its feature gradient and the alpha-smoothed center update, run over
several training steps.

Case k has keys
    k/options            [alpha, reduction code, steps]
    k/centers0           the centers before the first step [C, D]
    k/<s>/features       features of step s [N, D]
    k/<s>/labels         labels of step s [N] (repeated labels, classes absent from the batch)
    k/<s>/grad_output    the gradient reaching the loss: a scalar lambda (kMean, kSum) or one
                         value per sample (kNone)
and, for the features rounded to each test dtype (the tags of reference_common.ROUNDINGS),
    k/<tag>/<s>/loss     the loss of step s
    k/<tag>/<s>/grad     grad_output-weighted gradient of the loss with respect to the features
    k/<tag>/<s>/centers  the centers after step s's update
The update is the paper's, from the centers as they were at forward time, unscaled by lambda:
    delta_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j),   c_j <- c_j - alpha * delta_j
for the classes present; absent classes keep their centers.
"""
import torch

from reference_common import REDUCTIONS, ROUNDINGS, rounded


def center_loss_value(x, y, centers, reduction):
    """0.5 * ||x_i - c_{y_i}||^2 per sample, reduced (mean divides by N)."""
    losses = 0.5 * ((x - centers[y]) ** 2).sum(dim=1)
    return {"none": losses, "mean": losses.sum() / x.shape[0], "sum": losses.sum()}[reduction]


def center_update(x, y, centers, alpha):
    """The authors' update, one class at a time, in float64."""
    updated = centers.clone()
    for j in range(centers.shape[0]):
        members = (y == j).nonzero().flatten()
        if members.numel() == 0:
            continue  # absent classes do not move
        delta = (centers[j] - x[members]).sum(dim=0) / (1 + members.numel())
        updated[j] = centers[j] - alpha * delta
    return updated


# (C, D, N, alpha, reduction, steps, lambda, label pool): the pool leaves some classes out of
# every batch and forces repeats.
CASES = [
    (5, 3, 8, 0.5, 1, 4, 0.3, [0, 1, 1, 3]),
    (7, 4, 6, 0.25, 2, 3, 2.5, [0, 2, 2, 5, 6]),
    (4, 5, 5, 1.0, 0, 3, None, [1, 2, 3]),
    (6, 3, 1, 0.9, 1, 3, 1.0, [0, 4]),
    (3, 8, 12, 0.0, 1, 2, 0.7, [2]),
    (10, 6, 9, 0.5, 2, 3, 0.01, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
]


def center_loss_cases(gen):
    out = {}
    for k, (c, d, n, alpha, reduction, steps, lam, pool) in enumerate(CASES):
        key = str(k)
        red = REDUCTIONS[reduction]
        centers0 = torch.randn(c, d, generator=gen, dtype=torch.float64)
        out[f"{key}/options"] = torch.tensor([alpha, reduction, steps], dtype=torch.float64)
        out[f"{key}/centers0"] = centers0
        batches = []
        for s in range(steps):
            pool_t = torch.tensor(pool)
            labels = pool_t[torch.randint(0, len(pool), (n,), generator=gen)]
            features = 1.5 * torch.randn(n, d, generator=gen, dtype=torch.float64) + 0.5
            if red == "none":
                grad_output = torch.randn(n, generator=gen, dtype=torch.float64)
            else:
                grad_output = torch.tensor(lam, dtype=torch.float64)
            out[f"{key}/{s}/features"] = features
            out[f"{key}/{s}/labels"] = labels
            out[f"{key}/{s}/grad_output"] = grad_output
            batches.append((features, labels, grad_output))
        for tag, dtype in ROUNDINGS.items():
            centers = centers0.clone()
            for s, (features, labels, grad_output) in enumerate(batches):
                x = rounded(features, dtype).requires_grad_()
                loss = center_loss_value(x, labels, centers, red)
                (grad,) = torch.autograd.grad(loss, x, grad_output)
                centers = center_update(x.detach(), labels, centers, alpha)
                out[f"{key}/{tag}/{s}/loss"] = loss.detach()
                out[f"{key}/{tag}/{s}/grad"] = grad
                out[f"{key}/{tag}/{s}/centers"] = centers.clone()
    out["count"] = torch.tensor(len(CASES))
    return out


FIXTURES = {
    "center_loss.pt": center_loss_cases,
}
