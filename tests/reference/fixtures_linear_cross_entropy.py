"""Fixtures of the fused classifier head linear_cross_entropy, in float64, from PyTorch's own
functions: cross_entropy(linear(x, W, b), y, ...) plus PaLM's z-loss z * logsumexp^2 per
counted sample, with the cosine form (normalize(x) . normalize(W)^T), insightface's ArcFace /
CosFace target margins and logit adjustment (x + tau log prior)."""
import math

import torch
import torch.nn.functional as F

from reference_common import REDUCTIONS

IGNORE = -100

# (bias, class weight, label smoothing, z_loss, reduction, cosine, scale, m2, m3, tau)
CASES = [
    (True, True, 0.1, 0.0, 1, False, 1.0, 0.0, 0.0, None),
    (False, False, 0.0, 1e-2, 2, False, 1.0, 0.0, 0.0, None),
    (True, True, 0.2, 5e-2, 0, False, 1.0, 0.0, 0.0, None),
    (False, False, 0.0, 0.0, 1, True, 30.0, 0.5, 0.0, None),
    (False, True, 0.1, 1e-3, 2, True, 16.0, 0.3, 0.2, 1.0),
    (True, False, 0.0, 0.0, 0, False, 2.0, 0.0, 0.35, 0.5),
]


def arcface_target(cos_y, m2, m3):
    """insightface's classic ArcFace/CosFace target: cos(theta + m2) where theta + m2 <= pi,
    else cos - m2 sin m2; then minus m3."""
    if m2 == 0:
        return cos_y - m3
    theta = torch.acos(cos_y)
    psi = torch.where(theta + m2 <= math.pi, torch.cos(theta + m2), cos_y - m2 * math.sin(m2))
    return psi - m3


def reference(x, w, b, y, class_weight, smoothing, z_loss, reduction, cosine, scale, m2, m3, counts, tau):
    l = F.normalize(x, dim=1) @ F.normalize(w, dim=1).t() if cosine else F.linear(x, w, b)
    valid = y != IGNORE
    safe = torch.where(valid, y, torch.zeros_like(y))
    if m2 != 0 or m3 != 0:
        target = l.gather(1, safe[:, None])
        l = l.scatter(1, safe[:, None], torch.where(valid[:, None], arcface_target(target, m2, m3), target))
    z = scale * l
    if counts is not None:
        z = z + tau * torch.log(counts / counts.sum())
    lse_sq = torch.where(valid, torch.logsumexp(z, 1) ** 2, torch.zeros(()))
    red = REDUCTIONS[reduction]
    ce = F.cross_entropy(z, y, weight=class_weight, ignore_index=IGNORE, label_smoothing=smoothing, reduction=red)
    if red == "none":
        return ce + z_loss * lse_sq
    if red == "sum":
        return ce + z_loss * lse_sq.sum()
    return ce + z_loss * lse_sq.sum() / valid.sum()


def linear_cross_entropy_cases(gen):
    out = {}
    n, d, c = 9, 6, 7
    for k, (bias, weighted, smoothing, z_loss, reduction, cosine, scale, m2, m3, tau) in enumerate(CASES):
        x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        w = torch.randn(c, d, generator=gen, dtype=torch.float64) * 0.5
        b = torch.randn(c, generator=gen, dtype=torch.float64) if bias else None
        y = torch.randint(0, c, (n,), generator=gen)
        y[::4] = IGNORE
        class_weight = torch.rand(c, generator=gen, dtype=torch.float64) + 0.1 if weighted else None
        counts = torch.randint(1, 500, (c,), generator=gen).to(torch.float64) if tau is not None else None
        grad_output = torch.randn((n,) if REDUCTIONS[reduction] == "none" else (), generator=gen,
                                  dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/weight"] = w
        if bias:
            out[f"{key}/bias"] = b
        out[f"{key}/target"] = y
        if weighted:
            out[f"{key}/class_weight"] = class_weight
        if counts is not None:
            out[f"{key}/counts"] = counts
        out[f"{key}/options"] = torch.tensor(
            [smoothing, z_loss, reduction, float(cosine), scale, m2, m3, tau if tau is not None else 0.0],
            dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        leaves = [x.clone().requires_grad_(), w.clone().requires_grad_()] + ([b.clone().requires_grad_()] if bias else [])
        loss = reference(leaves[0], leaves[1], leaves[2] if bias else None, y, class_weight, smoothing, z_loss,
                         reduction, cosine, scale, m2, m3, counts, tau if tau is not None else 0.0)
        grads = torch.autograd.grad(loss, leaves, grad_output)
        out[f"{key}/f64/loss"] = loss.detach()
        out[f"{key}/f64/grad_input"] = grads[0]
        out[f"{key}/f64/grad_weight"] = grads[1]
        if bias:
            out[f"{key}/f64/grad_bias"] = grads[2]
    out["count"] = torch.tensor(len(CASES))
    return out


FIXTURES = {
    "linear_cross_entropy.pt": linear_cross_entropy_cases,
}
