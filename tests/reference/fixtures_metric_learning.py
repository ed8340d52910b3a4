"""Fixtures of the metric-learning losses, in float64, from the authors' definitions:
the combined angular / cosine margin of insightface's CombinedMarginLoss (ArcFace, CosFace),
the supervised contrastive loss of Khosla et al. as HobbitLong/SupContrast's SupConLoss computes
it (written out step by step below), and the batch-hard triplet loss of Hermans et al."""
import itertools
import math

import torch
import torch.nn.functional as F

from reference_common import REDUCTIONS, record


# --- Combined margin (ArcFace m2, CosFace m3) ------------------------------------------------

def arcface_psi(c, m2, easy_margin):
    """insightface's target transform for m1 = 1: cos(theta + m2) written as
    c cos m2 - sqrt(1 - c^2) sin m2 where theta + m2 <= pi (easy margin: where c > 0), else the
    fallback c - m2 sin m2 (easy margin: c itself)."""
    cos_theta_m = c * math.cos(m2) - torch.sqrt(1.0 - c * c) * math.sin(m2)
    if easy_margin:
        return torch.where(c > 0, cos_theta_m, c)
    return torch.where(c >= math.cos(math.pi - m2), cos_theta_m, c - m2 * math.sin(m2))


def combined_margin_reference(cos, target, s, m2, m3, easy_margin, ignore_index, reduction):
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    c = cos.gather(1, safe.unsqueeze(1)).squeeze(1)
    psi = arcface_psi(c, m2, easy_margin) if m2 > 0 else c
    # Where the angular branch applies, it is cos(arccos(c) + m2) (checked on the values).
    if m2 > 0:
        angular = c >= (0 if easy_margin else math.cos(math.pi - m2))
        direct = torch.cos(torch.arccos(c.detach()) + m2)
        assert torch.allclose(psi.detach()[angular], direct[angular], rtol=0, atol=1e-12)
    onehot = F.one_hot(safe, cos.shape[1]).to(torch.float64) * valid.unsqueeze(1)
    logits = cos + onehot * (psi - m3 - c).unsqueeze(1)
    return F.cross_entropy(s * logits, target, ignore_index=ignore_index, reduction=reduction)


def combined_margin_cases(gen):
    out = {}
    k = 0
    for (m2, m3, easy), s, reduction, ignore, shape in itertools.product(
            [(0.5, 0.0, False), (0.0, 0.35, False), (0.3, 0.2, False), (1.2, 0.0, False), (0.5, 0.0, True),
             (0.0, 0.0, False)],
            [64.0, 1.0], range(3), [False, True], [(8, 5), (5, 11)]):
        if s == 1.0 and (ignore or shape != (8, 5)):
            continue
        n, c = shape
        cos = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
        target = torch.randint(0, c, (n,), generator=gen)
        # Targets on both sides of the fallback threshold cos(pi - m2) and near +-1.
        target_cos = torch.tensor([-0.97, -0.5, 0.2, 0.9, 0.99, -0.99, 0.6, -0.1][:n], dtype=torch.float64)
        cos[torch.arange(n), target] = target_cos[torch.randperm(n, generator=gen)]
        if ignore:
            target[::3] = -100
        red = REDUCTIONS[reduction]
        grad_output = torch.randn((n,) if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = cos
        out[f"{key}/target"] = target
        out[f"{key}/options"] = torch.tensor([s, m2, m3, float(easy), -100, reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, cos, grad_output, lambda xr: combined_margin_reference(
            xr, target, s, m2, m3, easy, -100, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


# --- Supervised contrastive loss (Khosla et al.) ---------------------------------------------

def supcon_authors(features, labels, temperature, base_temperature, contrast_mode):
    """SupConLoss.forward of github.com/HobbitLong/SupContrast (losses.py), step by step, up to
    the final mean: returns the per-anchor losses [anchor_count, batch_size]."""
    batch_size = features.shape[0]
    if labels is None:
        mask = torch.eye(batch_size, dtype=torch.float64)
    else:
        labels = labels.contiguous().view(-1, 1)
        mask = torch.eq(labels, labels.T).to(torch.float64)
    contrast_count = features.shape[1]
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    if contrast_mode == "one":
        anchor_feature = features[:, 0]
        anchor_count = 1
    else:
        anchor_feature = contrast_feature
        anchor_count = contrast_count
    anchor_dot_contrast = torch.matmul(anchor_feature, contrast_feature.T) / temperature
    logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()
    mask = mask.repeat(anchor_count, contrast_count)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(batch_size * anchor_count).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mask_pos_pairs = mask.sum(1)
    mask_pos_pairs = torch.where(mask_pos_pairs < 1e-6, torch.ones_like(mask_pos_pairs), mask_pos_pairs)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    return loss.view(anchor_count, batch_size)


def supcon_reference(features, labels, temperature, base_temperature, contrast_mode, reduction):
    per_anchor = supcon_authors(features, labels, temperature, base_temperature, contrast_mode)
    if reduction == "none":
        return per_anchor.t()  # [N, anchor views]
    return per_anchor.mean() if reduction == "mean" else per_anchor.sum()


def supcon_cases(gen):
    out = {}
    k = 0
    for views, labelled, mode, (temperature, base), reduction in itertools.product(
            [1, 2, 3], [True, False], ["all", "one"], [(0.07, 0.07), (0.5, 0.1)], range(3)):
        if views == 3 and (reduction != 1 or temperature != 0.07):
            continue
        n, d = 7, 5
        features = F.normalize(torch.randn(n, views, d, generator=gen, dtype=torch.float64), dim=2)
        # Labels with a singleton class: with one view its anchor has no positive.
        labels = torch.tensor([0, 1, 2, 1, 0, 3, 1])[torch.randperm(n, generator=gen)] if labelled else None
        red = REDUCTIONS[reduction]
        anchor_views = views if mode == "all" else 1
        grad_output = torch.randn((n, anchor_views) if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = features
        if labelled:
            out[f"{key}/target"] = labels
        out[f"{key}/options"] = torch.tensor([temperature, base, float(mode == "one"), reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, features, grad_output, lambda xr: supcon_reference(
            xr, labels, temperature, base, mode, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


def supcon_distributed_case(gen):
    """A batch for the two-rank test: 10 samples of 2 views, with the loss of the concatenated
    batch and its feature gradient, for kMean and kSum, supervised and SimCLR."""
    features = F.normalize(torch.randn(10, 2, 6, generator=gen, dtype=torch.float64), dim=2)
    labels = torch.randint(0, 4, (10,), generator=gen)
    out = {"features": features, "labels": labels}
    for (tag, lab), red in itertools.product((("supervised", labels), ("simclr", None)), ("mean", "sum")):
        x = features.clone().requires_grad_()
        loss = supcon_reference(x, lab, 0.1, 0.07, "all", red)
        (grad,) = torch.autograd.grad(loss, x)
        out[f"{tag}/{red}/loss"] = loss.detach()
        out[f"{tag}/{red}/grad"] = grad
    return out


# --- Batch-hard triplet loss (Hermans et al.) ------------------------------------------------

def batch_hard_reference(x, labels, margin, squared, soft_margin, reduction):
    """Per anchor: the farthest positive and nearest negative by Euclidean (or squared)
    distance, chosen on the full distance matrix; anchors lacking either are left out."""
    n = x.shape[0]
    with torch.no_grad():
        dist = torch.cdist(x, x)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(n, dtype=torch.bool)
        positive_mask = same & ~eye
        negative_mask = ~same
        valid = positive_mask.any(1) & negative_mask.any(1)
        positive = dist.masked_fill(~positive_mask, -math.inf).argmax(1)
        negative = dist.masked_fill(~negative_mask, math.inf).argmin(1)
    d_ap = (x - x[positive]).norm(dim=1)
    d_an = (x - x[negative]).norm(dim=1)
    if squared:
        d_ap, d_an = d_ap ** 2, d_an ** 2
    gap = d_ap - d_an
    losses = F.softplus(gap) if soft_margin else F.relu(gap + margin)
    losses = torch.where(valid, losses, torch.zeros_like(losses))
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / valid.sum() if valid.any() else losses.sum() * 0


def batch_hard_cases(gen):
    out = {}
    k = 0
    label_sets = [
        torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 3]),  # class 3 alone: no positive
        torch.tensor([4, 4, 7, 7, 4, 7, 7, 4, 4]),
        torch.tensor([5, 5, 5, 5, 5, 5, 5, 5, 5]),  # no negatives anywhere: everything left out
    ]
    for labels, (margin, squared, soft), reduction in itertools.product(
            label_sets, [(0.3, False, False), (1.0, True, False), (0.0, False, True), (0.5, False, False)],
            range(3)):
        x = torch.randn(9, 4, generator=gen, dtype=torch.float64)
        red = REDUCTIONS[reduction]
        grad_output = torch.randn((9,) if red == "none" else (), generator=gen, dtype=torch.float64)
        key = str(k)
        out[f"{key}/input"] = x
        out[f"{key}/target"] = labels
        out[f"{key}/options"] = torch.tensor([margin, float(squared), float(soft), reduction], dtype=torch.float64)
        out[f"{key}/grad_output"] = grad_output
        record(out, key, x, grad_output, lambda xr: batch_hard_reference(xr, labels, margin, squared, soft, red))
        k += 1
    out["count"] = torch.tensor(k)
    return out


FIXTURES = {
    "combined_margin_loss.pt": combined_margin_cases,
    "supervised_contrastive_loss.pt": supcon_cases,
    "supervised_contrastive_distributed.pt": supcon_distributed_case,
    "batch_hard_triplet_loss.pt": batch_hard_cases,
}
