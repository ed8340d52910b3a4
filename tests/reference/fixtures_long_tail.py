"""Fixtures of the long-tail losses, in float64: logit-adjusted cross entropy (PyTorch's
cross_entropy of x + tau * log prior), LDAM (the reference implementation of Cao et al.,
kaidic/LDAM-DRW, and its generalisation to ignore_index and [N, C, d...]), and the asymmetric
loss (the exact formula, checked against Alibaba-MIIL's AsymmetricLoss where that one's
probability clamp does not bite)."""
import itertools

import torch
import torch.nn.functional as F

from reference_common import REDUCTIONS, record


def long_tail_counts(c, imbalance, gen):
    """Counts falling exponentially from 1000 to 1000 / imbalance, in a random class order."""
    counts = torch.round(1000.0 * imbalance ** (-torch.arange(c, dtype=torch.float64) / max(c - 1, 1)))
    return counts[torch.randperm(c, generator=gen)].to(torch.int64)


def class_dim_view(vector, dims):
    """A per-class vector [C] shaped to broadcast against [N, C, d...] of `dims` dimensions."""
    return vector.view([1, -1] + [1] * (dims - 2))


def logit_adjusted_reference(x, target, counts, tau, weight, ignore_index, smoothing, reduction):
    prior = counts.to(torch.float64) / counts.sum()
    adjusted = x + tau * class_dim_view(prior.log(), x.dim())
    return F.cross_entropy(adjusted, target, weight=weight, ignore_index=ignore_index,
                           label_smoothing=smoothing, reduction=reduction)


def logit_adjusted_cases(gen):
    out = {}
    k = 0
    for shape, tau, weighted, smoothing, reduction, scale in itertools.product(
            [(6, 5), (3, 4, 3, 2)], [0.0, 0.5, 1.0, 2.0], [False, True], [0.0, 0.1], range(3), [3.0, 1e4]):
        if scale > 10 and (smoothing > 0 or shape != (6, 5) or tau not in (1.0, 2.0)):
            continue  # extreme logits: a few cases suffice
        n, c = shape[0], shape[1]
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        target_shape = (n,) + shape[2:]
        target = torch.randint(0, c, target_shape, generator=gen)
        target.view(-1)[::4] = -100
        counts = long_tail_counts(c, 100.0, gen)
        weight = torch.rand(c, generator=gen, dtype=torch.float64) + 0.1 if weighted else None
        red = REDUCTIONS[reduction]
        grad_output = torch.randn(target_shape if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = target
        out[f"{key}/counts"] = counts
        if weighted:
            out[f"{key}/weight"] = weight
        out[f"{key}/options"] = torch.tensor([tau, -100, smoothing, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, x, grad_output, lambda xr: logit_adjusted_reference(
            xr, target, counts, tau, weight, -100, smoothing, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


def ldam_kaidic(x, target, counts, max_m, s, weight, reduction):
    """LDAMLoss.forward of github.com/kaidic/LDAM-DRW (losses.py), in float64: margins
    n^(-1/4) scaled to max_m, taken off the target logit through a one-hot index."""
    m_list = 1.0 / torch.sqrt(torch.sqrt(counts.to(torch.float64)))
    m_list = m_list * (max_m / m_list.max())
    index = torch.zeros_like(x, dtype=torch.bool)
    index.scatter_(1, target.view(-1, 1), True)
    batch_m = torch.matmul(m_list[None, :], index.to(torch.float64).transpose(0, 1)).view((-1, 1))
    output = torch.where(index, x - batch_m, x)
    return F.cross_entropy(s * output, target, weight=weight, reduction=reduction)


def ldam_general(x, target, counts, max_m, s, weight, ignore_index, reduction):
    """The same loss for [N, C, d...] and ignore_index: cross entropy of s (x - m_y onehot(y))."""
    n = counts.to(torch.float64)
    margins = max_m * (n.min() / n) ** 0.25
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, x.shape[1]).movedim(-1, 1).to(torch.float64)
    z = s * (x - margins[safe].unsqueeze(1) * onehot)
    return F.cross_entropy(z, target, weight=weight, ignore_index=ignore_index, reduction=reduction)


def ldam_cases(gen):
    out = {}
    k = 0
    for shape, max_m, s, weighted, ignore, reduction, scale in itertools.product(
            [(6, 5), (3, 4, 3, 2)], [0.0, 0.5, 1.0], [1.0, 30.0], [False, True], [False, True], range(3),
            [1.0, 1e4]):
        if scale > 10 and (shape != (6, 5) or max_m == 1.0 or ignore):
            continue
        if shape != (6, 5) and (weighted or s == 1.0):
            continue
        n, c = shape[0], shape[1]
        # Cosine-like logits in [-1, 1], or extreme ones.
        x = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) if scale == 1.0 else \
            torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        target_shape = (n,) + shape[2:]
        target = torch.randint(0, c, target_shape, generator=gen)
        if ignore:
            target.view(-1)[::4] = -100
        counts = long_tail_counts(c, 50.0, gen)
        weight = torch.rand(c, generator=gen, dtype=torch.float64) + 0.1 if weighted else None
        red = REDUCTIONS[reduction]
        grad_output = torch.randn(target_shape if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = target
        out[f"{key}/counts"] = counts
        if weighted:
            out[f"{key}/weight"] = weight
        out[f"{key}/options"] = torch.tensor([max_m, s, -100, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output

        def reference(xr):
            general = ldam_general(xr, target, counts, max_m, s, weight, -100, red)
            if len(shape) == 2 and not ignore:
                # The authors' code itself, where it applies: the two must agree.
                kaidic = ldam_kaidic(xr, target, counts, max_m, s, weight, red)
                assert torch.allclose(kaidic, general, rtol=1e-12, atol=1e-12), (kaidic, general)
                return kaidic
            return general
        record(out, key, x, grad_output, reference)
        k += 1
    out["count"] = torch.tensor(k)
    return out


def asymmetric_exact(x, y, gamma_pos, gamma_neg, clip, detach, reduction):
    """-y (1-p)^g+ log p - (1-y) p_m^g- log(1 - p_m), p_m = max(p - clip, 0), with every log
    exact at any logit (log p = logsigmoid(x), 1 - p_m = sigmoid(-x) + clip) and the focusing
    factors optionally detached."""
    log_p, log_q = F.logsigmoid(x), F.logsigmoid(-x)
    weight_pos = torch.exp(gamma_pos * log_q)
    if clip == 0:
        weight_neg = torch.exp(gamma_neg * log_p)
        neg_log = -log_q
    else:
        shifted = (torch.sigmoid(x) - clip).clamp(min=0)
        active = shifted > 0
        safe = torch.where(active, shifted, torch.ones_like(shifted))
        weight_neg = torch.where(active, safe ** gamma_neg, torch.zeros_like(shifted))
        one_minus = torch.where(active, torch.sigmoid(-x) + clip, torch.ones_like(shifted))
        neg_log = -torch.log(one_minus)
    if detach:
        weight_pos, weight_neg = weight_pos.detach(), weight_neg.detach()
    loss = -y * weight_pos * log_p + (1 - y) * weight_neg * neg_log
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def asymmetric_alibaba(x, y, gamma_neg, gamma_pos, clip, eps=1e-8, disable_torch_grad_focal_loss=True):
    """AsymmetricLoss.forward of github.com/Alibaba-MIIL/ASL (src/loss_functions/losses.py)."""
    x_sigmoid = torch.sigmoid(x)
    xs_pos = x_sigmoid
    xs_neg = 1 - x_sigmoid
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    los_pos = y * torch.log(xs_pos.clamp(min=eps))
    los_neg = (1 - y) * torch.log(xs_neg.clamp(min=eps))
    loss = los_pos + los_neg
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.set_grad_enabled(not disable_torch_grad_focal_loss and torch.is_grad_enabled()):
            pt = xs_pos * y + xs_neg * (1 - y)
            one_sided_gamma = gamma_pos * y + gamma_neg * (1 - y)
            one_sided_w = torch.pow(1 - pt, one_sided_gamma)
        loss = loss * one_sided_w
    return -loss.sum()


GAMMA_PAIRS = [(0.0, 0.0), (0.0, 4.0), (1.0, 4.0), (0.5, 0.5), (0.0, 2.5)]


def asymmetric_cases(gen):
    out = {}
    shape = (4, 3, 5)
    k = 0
    for (gamma_pos, gamma_neg), clip, detach, reduction, binary, scale in itertools.product(
            GAMMA_PAIRS, [0.0, 0.05, 0.2], [False, True], range(3), [True, False], [3.0, 1e4]):
        if (scale > 10 or not binary) and (detach or clip == 0.2):
            continue
        if not binary and scale > 10:
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
        out[f"{key}/options"] = torch.tensor([gamma_pos, gamma_neg, clip, float(detach), reduction],
                                             dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output

        def reference(xr):
            exact = asymmetric_exact(xr, y, gamma_pos, gamma_neg, clip, detach, red)
            if binary and scale < 10 and xr.abs().max() < 15:
                # Alibaba-MIIL's code gives the same sum and, with the matching detach
                # convention, the same gradient where its 1e-8 clamp is inactive.
                xa = xr.detach().requires_grad_()
                alibaba = asymmetric_alibaba(xa, y, gamma_neg, gamma_pos, clip, disable_torch_grad_focal_loss=detach)
                xe = xr.detach().requires_grad_()
                total = asymmetric_exact(xe, y, gamma_pos, gamma_neg, clip, detach, "sum")
                assert torch.allclose(alibaba, total, rtol=1e-10), (alibaba, total)
                (ga,) = torch.autograd.grad(alibaba, xa)
                (ge,) = torch.autograd.grad(total, xe)
                # (Its exact gradient is NaN at p_m = 0 for gamma_neg < 1: 0 * pow'(0); skip those.)
                ga = torch.where(ga.isfinite(), ga, ge)
                assert torch.allclose(ga, ge, rtol=1e-8, atol=1e-12), (ga - ge).abs().max()
            return exact
        record(out, key, x, grad_output, reference)
        k += 1
    out["count"] = torch.tensor(k)
    return out


FIXTURES = {
    "logit_adjusted_cross_entropy.pt": logit_adjusted_cases,
    "ldam_loss.pt": ldam_cases,
    "asymmetric_loss.pt": asymmetric_cases,
}
