"""Fixtures of the cross-entropy family: PyTorch's cross_entropy and
binary_cross_entropy_with_logits, the alpha-weighted BCE formula, and the class-weight formulas,
all in float64."""
import itertools

import torch
import torch.nn.functional as F

from reference_common import REDUCTIONS, record

def weighted_cross_entropy_cases(gen):
    out = {}
    shapes = [(6, 5), (3, 4, 3, 2)]
    k = 0
    for shape, weighted, ignore_index, smoothing, reduction, scale in itertools.product(
            shapes, [False, True], [-100, 2], [0.0, 0.15], range(3), [3.0, 1e4]):
        if scale > 10 and (smoothing > 0 or ignore_index != -100):
            continue  # extreme logits: a few cases suffice
        n, c = shape[0], shape[1]
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        target_shape = (n,) + shape[2:]
        target = torch.randint(0, c, target_shape, generator=gen)
        target.view(-1)[::4] = ignore_index  # every fourth target ignored
        weight = torch.rand(c, generator=gen, dtype=torch.float64) + 0.1 if weighted else None
        red = REDUCTIONS[reduction]
        grad_output = torch.randn(target_shape if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = target
        if weighted:
            out[f"{key}/weight"] = weight
        out[f"{key}/options"] = torch.tensor([ignore_index, smoothing, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, x, grad_output, lambda xr: F.cross_entropy(
            xr, target, weight=weight, ignore_index=ignore_index, label_smoothing=smoothing, reduction=red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


def weighted_bce_reference(x, y, alpha, weight, reduction):
    """-α y log σ(x) - (1-α)(1-y) log(1-σ(x)); α < 0: PyTorch's own BCE with logits."""
    if alpha < 0:
        return F.binary_cross_entropy_with_logits(x, y, weight=weight, reduction=reduction)
    loss = -(alpha * y * F.logsigmoid(x) + (1 - alpha) * (1 - y) * F.logsigmoid(-x))
    if weight is not None:
        loss = loss * weight
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def weighted_binary_cross_entropy_cases(gen):
    out = {}
    shape = (4, 3, 5)
    weight_shapes = [None, (5,), (4, 1, 1), (4, 3, 5), (3, 1)]
    k = 0
    for weight_shape, alpha, reduction, binary, scale in itertools.product(
            weight_shapes, [-1.0, 0.25, 0.8], range(3), [False, True], [3.0, 1e4]):
        if scale > 10 and (weight_shape not in (None, (5,)) or alpha == 0.8):
            continue
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        y = torch.rand(shape, generator=gen, dtype=torch.float64)
        if binary:
            y = (y > 0.5).to(torch.float64)
        weight = None if weight_shape is None else torch.rand(weight_shape, generator=gen, dtype=torch.float64)
        red = REDUCTIONS[reduction]
        grad_output = torch.randn(shape if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = y
        if weight is not None:
            out[f"{key}/weight"] = weight
        out[f"{key}/options"] = torch.tensor([alpha, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, x, grad_output, lambda xr: weighted_bce_reference(xr, y, alpha, weight, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


def class_weights_cases(_gen):
    out = {}
    counts = torch.tensor([5000, 2000, 500, 100, 20, 1], dtype=torch.float64)
    c = counts.numel()
    inverse = 1.0 / counts
    out["counts"] = counts.to(torch.int64)
    out["inverse_frequency"] = inverse * c / inverse.sum()
    betas = [0.0, 0.9, 0.99, 0.999, 0.9999]
    out["betas"] = torch.tensor(betas, dtype=torch.float64)
    for i, beta in enumerate(betas):
        w = (1 - beta) / (1 - torch.tensor(beta, dtype=torch.float64) ** counts)
        out[f"effective_number/{i}"] = w * c / w.sum()
    return out


FIXTURES = {
    "weighted_cross_entropy.pt": weighted_cross_entropy_cases,
    "weighted_binary_cross_entropy.pt": weighted_binary_cross_entropy_cases,
    "class_weights.pt": class_weights_cases,
}
