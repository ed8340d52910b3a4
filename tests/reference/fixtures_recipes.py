"""Fixtures of the modern-recipe losses, in float64, each from the reference it follows
(rewritten here as formulas, so the generator needs only Debian's torch; neither timm nor
mmpretrain is imported):

- soft-target cross entropy: timm's SoftTargetCrossEntropy (timm/loss/cross_entropy.py),
  sum(-target * log_softmax(x), -1), then mean over rows (or none/sum);
- mixup cross entropy: that loss at timm's mixup_target (timm/data/mixup.py: one-hot with
  off = smoothing / C, on = 1 - smoothing + off, mixed lam * y1 + (1 - lam) * y2, y2 being the
  flipped batch), generalised to any second label vector; flipped cases check the two agree;
- Poly-1: the paper's formula (Leng et al., ICLR 2022, its Poly-1 pseudo-code),
  cross_entropy + epsilon * (1 - p_y), mean over non-ignored targets;
- distillation: Hinton et al. 2015 as PyTorch writes it,
  T^2 * kl_div(log_softmax(s / T), softmax(t / T)) with batchmean (kMean), per-row sums (kNone);
- Seesaw: mmpretrain's seesaw_ce_loss and SeesawLoss.forward (mmpretrain/models/losses/
  seesaw_loss.py) step by step: cum_samples += this batch's label counts, then the mitigation
  matrix from the clamped counts, the compensation from the detached softmax scores divided by
  the target's score clamped at eps, x + log(weights) * (1 - onehot), cross entropy.
"""
import itertools

import torch
import torch.nn.functional as F

from reference_common import REDUCTIONS, ROUNDINGS, record, rounded


def reduce(loss, reduction):
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def timm_soft_target_cross_entropy(x, target, reduction):
    """timm's SoftTargetCrossEntropy.forward, with its .mean() made the reduction's choice."""
    loss = torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1)
    return reduce(loss, reduction)


def timm_one_hot(labels, num_classes, on_value, off_value):
    labels = labels.long().view(-1, 1)
    return torch.full((labels.size(0), num_classes), off_value, dtype=torch.float64).scatter_(1, labels, on_value)


def timm_mixup_target(target, num_classes, lam, smoothing):
    """timm.data.mixup.mixup_target (the second label vector is the flipped batch)."""
    off_value = smoothing / num_classes
    on_value = 1.0 - smoothing + off_value
    y1 = timm_one_hot(target, num_classes, on_value, off_value)
    y2 = timm_one_hot(target.flip(0), num_classes, on_value, off_value)
    return y1 * lam + y2 * (1.0 - lam)


def mixup_target_pair(y_a, y_b, num_classes, lam, smoothing):
    """mixup_target's mixing for any second label vector y_b."""
    off_value = smoothing / num_classes
    on_value = 1.0 - smoothing + off_value
    return (timm_one_hot(y_a, num_classes, on_value, off_value) * lam
            + timm_one_hot(y_b, num_classes, on_value, off_value) * (1.0 - lam))


def soft_target_cases(gen):
    out = {}
    k = 0
    for shape, kind, reduction, scale in itertools.product(
            [(6, 5), (4, 11)], ["distribution", "unnormalised", "one_hot"], range(3), [3.0, 1e4]):
        if scale > 10 and kind == "unnormalised":
            continue
        n, c = shape
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        if kind == "distribution":
            target = torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64) * 2, 1)
        elif kind == "unnormalised":
            target = torch.rand(shape, generator=gen, dtype=torch.float64)
        else:
            target = F.one_hot(torch.randint(0, c, (n,), generator=gen), c).to(torch.float64)
        red = REDUCTIONS[reduction]
        grad_output = torch.randn((n,) if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = target
        out[f"{key}/options"] = torch.tensor([reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, x, grad_output, lambda xr: timm_soft_target_cross_entropy(xr, target, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


def mixup_cases(gen):
    out = {}
    k = 0
    for shape, lam, smoothing, flipped, reduction, scale in itertools.product(
            [(6, 5), (8, 13)], [0.0, 0.3, 1.0], [0.0, 0.1], [True, False], range(3), [3.0, 1e4]):
        if scale > 10 and (lam == 0.0 or shape != (6, 5)):
            continue
        n, c = shape
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        y_a = torch.randint(0, c, (n,), generator=gen)
        y_b = y_a.flip(0) if flipped else torch.randint(0, c, (n,), generator=gen)
        target = mixup_target_pair(y_a, y_b, c, lam, smoothing)
        if flipped:
            assert torch.equal(target, timm_mixup_target(y_a, c, lam, smoothing))
        red = REDUCTIONS[reduction]
        grad_output = torch.randn((n,) if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/y_a"] = y_a
        out[f"{key}/y_b"] = y_b
        out[f"{key}/options"] = torch.tensor([lam, smoothing, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, x, grad_output, lambda xr: timm_soft_target_cross_entropy(xr, target, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


def poly1_reference(x, target, epsilon, ignore_index, reduction):
    """Leng et al.'s Poly-1: CE + epsilon * (1 - p_y) per sample; ignored samples give 0 and
    leave the mean's count (the convention of PyTorch's cross_entropy)."""
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    ce = F.cross_entropy(x, target, ignore_index=ignore_index, reduction="none")
    p_y = torch.softmax(x, 1).gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = torch.where(valid, ce + epsilon * (1 - p_y), torch.zeros_like(ce))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


def poly1_cases(gen):
    out = {}
    k = 0
    for shape, epsilon, ignore, reduction, scale in itertools.product(
            [(6, 5), (3, 4, 3, 2)], [1.0, 0.0, -1.0, 2.5], [False, True], range(3), [3.0, 1e4]):
        if scale > 10 and (shape != (6, 5) or epsilon in (0.0, 2.5)):
            continue
        n, c = shape[0], shape[1]
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        target_shape = (n,) + shape[2:]
        target = torch.randint(0, c, target_shape, generator=gen)
        if ignore:
            target.view(-1)[::3] = -100
        red = REDUCTIONS[reduction]
        grad_output = torch.randn(target_shape if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = target
        out[f"{key}/options"] = torch.tensor([epsilon, -100, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        if epsilon == 0.0:
            # Poly-1 at epsilon 0 is PyTorch's cross entropy itself.
            xa = x.clone()
            assert torch.allclose(poly1_reference(xa, target, 0.0, -100, red),
                                  F.cross_entropy(xa, target, ignore_index=-100, reduction=red), rtol=1e-14)
        record(out, key, x, grad_output, lambda xr: poly1_reference(xr, target, epsilon, -100, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


def distillation_reference(student, teacher, temperature, reduction):
    """T^2 KL(softmax(t / T) || softmax(s / T)) through PyTorch's kl_div."""
    log_p = F.log_softmax(student / temperature, dim=1)
    q = F.softmax(teacher / temperature, dim=1)
    t2 = temperature * temperature
    if reduction == "mean":
        return t2 * F.kl_div(log_p, q, reduction="batchmean")
    if reduction == "sum":
        return t2 * F.kl_div(log_p, q, reduction="sum")
    return t2 * F.kl_div(log_p, q, reduction="none").sum(1)


def distillation_cases(gen):
    out = {}
    k = 0
    for shape, temperature, reduction, scale in itertools.product(
            [(6, 5), (4, 9)], [1.0, 2.0, 4.0], range(3), [3.0, 1e4]):
        if scale > 10 and temperature == 2.0:
            continue
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        teacher = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        red = REDUCTIONS[reduction]
        grad_output = torch.randn((shape[0],) if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/teacher"] = teacher
        out[f"{key}/options"] = torch.tensor([temperature, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output

        record_with_rounded_teacher(out, key, x, teacher, grad_output, temperature, red)
        k += 1
    out["count"] = torch.tensor(k)
    return out


def record_with_rounded_teacher(out, key, x, teacher, grad_output, temperature, reduction):
    """As reference_common.record, with the teacher rounded to each dtype like the student."""
    for tag, dtype in ROUNDINGS.items():
        xr = rounded(x, dtype).requires_grad_()
        loss = distillation_reference(xr, rounded(teacher, dtype), temperature, reduction)
        (grad,) = torch.autograd.grad(loss, xr, grad_output)
        out[f"{key}/{tag}/loss"] = loss.detach()
        out[f"{key}/{tag}/grad"] = grad


def mmpretrain_seesaw_ce_loss(cls_score, labels, cum_samples, num_classes, p, q, eps, reduction):
    """mmpretrain's seesaw_ce_loss (weight None, avg_factor None)."""
    onehot_labels = F.one_hot(labels, num_classes)
    seesaw_weights = cls_score.new_ones(onehot_labels.size())
    if p > 0:
        sample_ratio_matrix = cum_samples[None, :].clamp(min=1) / cum_samples[:, None].clamp(min=1)
        index = (sample_ratio_matrix < 1.0).to(cls_score.dtype)
        sample_weights = sample_ratio_matrix.pow(p) * index + (1 - index)
        seesaw_weights = seesaw_weights * sample_weights[labels.long(), :]
    if q > 0:
        scores = F.softmax(cls_score.detach(), dim=1)
        self_scores = scores[torch.arange(0, len(scores)).long(), labels.long()]
        score_matrix = scores / self_scores[:, None].clamp(min=eps)
        index = (score_matrix > 1.0).to(cls_score.dtype)
        compensation_factor = score_matrix.pow(q) * index + (1 - index)
        seesaw_weights = seesaw_weights * compensation_factor
    cls_score = cls_score + (seesaw_weights.log() * (1 - onehot_labels))
    loss = F.cross_entropy(cls_score, labels, weight=None, reduction="none")
    return reduce(loss, reduction)


def mmpretrain_seesaw_counts(cum_samples, labels):
    """SeesawLoss.forward's accumulation: cum_samples[u] += count of u, for each label u."""
    cum = cum_samples.clone()
    for u in labels.unique():
        cum[u] += (labels == u.item()).sum()
    return cum


def seesaw_cases(gen):
    out = {}
    k = 0
    for (n, c), (p, q, eps), reduction, scale in itertools.product(
            [(8, 5), (12, 9)], [(0.8, 2.0, 1e-2), (0.0, 2.0, 1e-2), (0.8, 0.0, 1e-2), (1.5, 1.0, 0.2)], range(3),
            [3.0, 1e4]):
        if scale > 10 and (n, c) != (8, 5):
            continue
        x = torch.randn((n, c), generator=gen, dtype=torch.float64) * scale
        labels = torch.randint(0, c, (n,), generator=gen)
        # Long-tailed running counts before this batch, some classes never seen yet.
        cum_before = torch.round(500.0 * torch.rand(c, generator=gen, dtype=torch.float64) ** 3)
        cum_before[torch.randperm(c, generator=gen)[:2]] = 0
        cum_after = mmpretrain_seesaw_counts(cum_before, labels)
        red = REDUCTIONS[reduction]
        grad_output = torch.randn((n,) if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = labels
        out[f"{key}/cum_samples"] = cum_before
        out[f"{key}/cum_after"] = cum_after
        out[f"{key}/options"] = torch.tensor([p, q, eps, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, x, grad_output,
               lambda xr: mmpretrain_seesaw_ce_loss(xr, labels, cum_after, c, p, q, eps, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


FIXTURES = {
    "soft_target_cross_entropy.pt": soft_target_cases,
    "mixup_cross_entropy.pt": mixup_cases,
    "poly1_cross_entropy.pt": poly1_cases,
    "distillation_loss.pt": distillation_cases,
    "seesaw_loss.pt": seesaw_cases,
}
