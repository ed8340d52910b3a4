"""Fixtures of the focal family and multi-label soft margin: torchvision's
sigmoid_focal_loss, PyTorch's multilabel_soft_margin_loss, and the softmax focal formula, in
float64. Where torchvision's own gradient is NaN (gamma < 1 on saturated logits), the expected
gradient comes from autograd through the same formula with log(1 - p_t) computed stably."""
import itertools

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from reference_common import REDUCTIONS, record

GAMMAS = [0.0, 0.5, 2.0, 3.7]


def softmax_focal_reference(x, target, gamma, alpha, ignore_index, reduction):
    """-alpha_y (1 - p_y)^gamma log p_y over the class dim 1; mean over non-ignored targets."""
    logp = F.log_softmax(x, dim=1)
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    # Ignored positions get a harmless stand-in, so no 0 * inf reaches their zero gradient.
    logp_y = torch.where(valid, logp.gather(1, safe.unsqueeze(1)).squeeze(1), -torch.ones_like(logp[:, 0]))
    # (1 - p)^gamma = exp(gamma * log(1 - p)); log(1 - p) = log(-expm1(log p)) stays finite
    # and differentiable except at p = 1 exactly, which these inputs avoid.
    focal = torch.exp(gamma * torch.log(-torch.expm1(logp_y))) if gamma > 0 else torch.ones_like(logp_y)
    loss = -focal * logp_y
    if alpha is not None:
        loss = loss * alpha[safe]
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


def stable_sigmoid_focal(x, y, gamma, alpha, reduction):
    """torchvision's formula with (1 - p_t)^gamma = exp(gamma * log(1 - p_t)) and
    log(1 - p_t) = logaddexp(log y + logsigmoid(-x), log(1 - y) + logsigmoid(x))."""
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    log_m = torch.logaddexp(torch.log(y) + F.logsigmoid(-x), torch.log1p(-y) + F.logsigmoid(x))
    loss = ce * torch.exp(gamma * log_m)
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def focal_cases(gen):
    out = {}
    k = 0
    for shape, gamma, with_alpha, reduction, scale in itertools.product(
            [(6, 5), (3, 4, 3, 2)], GAMMAS, [False, True], range(3), [3.0, 1e4]):
        if scale > 10 and shape != (6, 5):
            continue
        n, c = shape[0], shape[1]
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        target_shape = (n,) + shape[2:]
        target = torch.randint(0, c, target_shape, generator=gen)
        target.view(-1)[::5] = -100
        alpha = torch.rand(c, generator=gen, dtype=torch.float64) if with_alpha else None
        red = REDUCTIONS[reduction]
        grad_output = torch.randn(target_shape if red == "none" else (), generator=gen, dtype=torch.float64)
        if scale > 10:
            # Saturated rows: p_y is exactly 1 in float64 where the target has the largest
            # logit; the reference formula is only differentiable where p_y < 1, so aim the
            # targets at non-maximal classes there.
            target = torch.where(target == x.argmax(1), (target + 1) % c, target)
            target.view(-1)[::5] = -100
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = target
        if alpha is not None:
            out[f"{key}/alpha"] = alpha
        out[f"{key}/options"] = torch.tensor([gamma, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, x, grad_output,
               lambda xr: softmax_focal_reference(xr, target, gamma, alpha, -100, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


def sigmoid_focal_cases(gen):
    out = {}
    shape = (4, 3, 5)
    k = 0
    for gamma, alpha, reduction, binary, scale in itertools.product(
            GAMMAS, [-1.0, 0.25, 0.9], range(3), [False, True], [3.0, 1e4]):
        if scale > 10 and not binary:
            continue
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        y = torch.rand(shape, generator=gen, dtype=torch.float64)
        if binary:
            y = (y > 0.5).to(torch.float64)
        red = REDUCTIONS[reduction]
        grad_output = torch.randn(shape if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = y
        out[f"{key}/options"] = torch.tensor([gamma, alpha, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        # torchvision itself at ordinary logits; at saturated ones, the stable form of the same
        # formula (torchvision's 1 - p_t cancels there and its gradient can be NaN). The two
        # must agree on the value everywhere.
        def reference(xr):
            tv = sigmoid_focal_loss(xr, y, alpha=alpha, gamma=gamma, reduction=red)
            stable = stable_sigmoid_focal(xr, y, gamma, alpha, red)
            assert torch.allclose(tv, stable, rtol=1e-9, atol=1e-12), (tv, stable)
            return tv if scale < 10 else stable
        record(out, key, x, grad_output, reference)
        k += 1
    out["count"] = torch.tensor(k)
    return out


def multilabel_soft_margin_cases(gen):
    out = {}
    k = 0
    for weighted, reduction, scale in itertools.product([False, True], range(3), [3.0, 1e4]):
        x = torch.randn(7, 6, generator=gen, dtype=torch.float64) * scale
        y = (torch.rand(7, 6, generator=gen) > 0.5).to(torch.float64)
        weight = torch.rand(6, generator=gen, dtype=torch.float64) if weighted else None
        red = REDUCTIONS[reduction]
        grad_output = torch.randn(7 if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = y
        if weight is not None:
            out[f"{key}/weight"] = weight
        out[f"{key}/options"] = torch.tensor([reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, x, grad_output,
               lambda xr: F.multilabel_soft_margin_loss(xr, y, weight=weight, reduction=red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


FIXTURES = {
    "focal_loss.pt": focal_cases,
    "sigmoid_focal_loss.pt": sigmoid_focal_cases,
    "multilabel_soft_margin_loss.pt": multilabel_soft_margin_cases,
}
