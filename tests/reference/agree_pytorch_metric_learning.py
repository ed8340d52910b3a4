#!/usr/bin/python3
"""Checks the committed metric-learning fixtures against a second, independent implementation:
pytorch-metric-learning (Musgrave et al.; PyPI, pure Python), in float64, losses and gradients.

The fixtures (fixtures_metric_learning.py) transcribe the authors' definitions; the C++ tests
hold torchloss to them. Here the same inputs go through pytorch-metric-learning's ArcFaceLoss,
CosFaceLoss, SupConLoss, and BatchHardMiner + TripletMarginLoss, so a transcription error in
the fixtures cannot go unnoticed. scripts/install_deps.sh installs the pinned package into
.deps/reference-packages/; run as

    PYTHONPATH=.deps/reference-packages /usr/bin/python3 tests/reference/agree_pytorch_metric_learning.py

What the package cannot express is left to the authors' formulas (and said in the output):
combined ArcFace + CosFace margins and easy_margin (it has neither), SupCon's contrast_mode
"one" (its ref_emb path keeps the anchor itself in the contrast set, the authors' code removes
it). Its SupCon has no base temperature: its loss and gradient are scaled by τ/τ_b here, as the
authors' are, outside autograd: an anchor without positives divides 0 by (0 + tiny) there, and its
gradient overflows to NaN once the upstream gradient exceeds about 4 (torchloss and the authors'
code give 0).
Exits 1 on any disagreement, or if a family compares no case at all.
"""
import argparse
import math
import os
import sys

import torch
from reference_common import REDUCTIONS  # beside this script: the fixtures' reduction codes

try:
    from pytorch_metric_learning import distances, losses, miners, reducers
except ImportError as error:
    sys.exit(f"agree_pytorch_metric_learning: {error}; scripts/install_deps.sh installs the pinned package "
             "into .deps/reference-packages (run with PYTHONPATH=.deps/reference-packages)")

RTOL, ATOL = 1e-9, 1e-12


def reducer(reduction):
    return {"none": reducers.DoNothingReducer, "mean": reducers.MeanReducer, "sum": reducers.SumReducer}[reduction]()


def per_element(loss_dict, size):
    """The per-element (or per-anchor) losses of DoNothingReducer's output, in element order;
    zeros where the package reduced to a constant zero (nothing to mine)."""
    entry = loss_dict["loss"]
    if entry["reduction_type"] == "already_reduced":
        return torch.full((size,), float(entry["losses"]), dtype=torch.float64)
    if entry["reduction_type"] == "triplet":
        anchors = entry["indices"][0]
        out = entry["losses"].new_zeros(size)
        return out.index_put((anchors,), entry["losses"], accumulate=True)
    return entry["losses"]


def margin_loss(case):
    """ArcFace (m2 > 0, m3 = 0) or CosFace (m2 = 0): the package's loss with its cosine taken
    from the fixture instead of from embeddings and a weight matrix. Each family's builder
    returns (loss function, scale of its value and gradient), or None where the package has no
    counterpart."""
    s, m2, m3, easy, ignore_index, reduction = case["options"].tolist()
    if easy or (m2 > 0 and m3 > 0):
        return None
    reduction = REDUCTIONS[int(reduction)]
    cos, target = case["input"], case["target"]
    classes = cos.shape[1]
    if m2 > 0:
        module = losses.ArcFaceLoss(classes, 1, margin=math.degrees(m2), scale=s, reducer=reducer(reduction))
    else:
        module = losses.CosFaceLoss(classes, 1, margin=m3, scale=s, reducer=reducer(reduction))
    module.get_cosine = lambda cosine: cosine  # the fixture's cosines are the input
    valid = target != int(ignore_index)

    def loss_fn(x):
        out = module(x[valid], target[valid])
        if reduction != "none":
            return out
        per_sample = x.new_zeros(x.shape[0])
        return per_sample.masked_scatter(valid, per_element(out, int(valid.sum())))
    return loss_fn, 1.0


def supcon_loss(case):
    """Every view an anchor: the package's SupConLoss on the views stacked view-major, labels
    repeated (SimCLR: each sample its own label), with the dot product of the caller's
    normalised features; its value and gradient scale by τ/τ_b."""
    temperature, base, mode_one, reduction = case["options"].tolist()
    if mode_one:
        return None
    reduction = REDUCTIONS[int(reduction)]
    n, views, _ = case["input"].shape
    labels = case.get("target", torch.arange(n))
    module = losses.SupConLoss(temperature=temperature, reducer=reducer(reduction),
                               distance=distances.DotProductSimilarity(normalize_embeddings=False))

    def loss_fn(x):
        out = module(torch.cat(torch.unbind(x, 1)), labels.repeat(views))
        if reduction == "none":
            out = per_element(out, n * views).view(views, n).t()
        return out
    return loss_fn, temperature / base


def batch_hard_loss(case):
    """BatchHardMiner (hardest positive and negative per anchor, anchors lacking either left
    out) and TripletMarginLoss on those triplets, Euclidean distance (squared if set), without
    the package's default normalisation; soft margin: softplus of the margin violation with
    margin 0."""
    margin, squared, soft, reduction = case["options"].tolist()
    reduction = REDUCTIONS[int(reduction)]
    distance = distances.LpDistance(normalize_embeddings=False, p=2, power=2 if squared else 1)
    miner = miners.BatchHardMiner(distance=distance)
    module = losses.TripletMarginLoss(margin=0.0 if soft else margin, smooth_loss=bool(soft),
                                      distance=distance, reducer=reducer(reduction))
    labels = case["target"]

    def loss_fn(x):
        out = module(x, labels, miner(x, labels))
        return per_element(out, x.shape[0]) if reduction == "none" else out
    return loss_fn, 1.0


FAMILIES = {
    "combined_margin_loss.pt": margin_loss,
    "supervised_contrastive_loss.pt": supcon_loss,
    "batch_hard_triplet_loss.pt": batch_hard_loss,
}


def cases(fixture):
    for k in range(int(fixture["count"])):
        prefix = f"{k}/"
        yield k, {key[len(prefix):]: value for key, value in fixture.items() if key.startswith(prefix)}


def check(name, fixture, make_loss):
    """(compared, skipped, failures) of one fixture file, on its float64 expectations."""
    compared, skipped, failures = 0, 0, []
    for k, case in cases(fixture):
        made = make_loss(case)
        if made is None:
            skipped += 1
            continue
        loss_fn, scale = made
        x = case["input"].clone().requires_grad_()
        loss = loss_fn(x)
        # Nothing to mine or contrast: the package returns a constant zero, without a graph.
        grad = torch.autograd.grad(loss, x, case["grad_output"], allow_unused=True)[0] if loss.requires_grad else None
        grad = torch.zeros_like(x) if grad is None else grad
        loss, grad = scale * torch.as_tensor(loss, dtype=torch.float64), scale * grad
        for what, got, want in (("loss", loss.detach(), case["f64/loss"]), ("grad", grad, case["f64/grad"])):
            if got.shape != want.shape or not torch.allclose(got, want, rtol=RTOL, atol=ATOL):
                diff = (got - want).abs().max().item() if got.shape == want.shape else f"shape {tuple(got.shape)}"
                failures.append(f"{name} case {k} {what}: differs by {diff}")
        compared += 1
    return compared, skipped, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    failed = False
    for name, make_loss in FAMILIES.items():
        fixture = torch.load(os.path.join(args.fixtures_dir, name))
        compared, skipped, failures = check(name, fixture, make_loss)
        print(f"{name}: {compared} cases agree with pytorch-metric-learning"
              f" within rtol {RTOL:g}, atol {ATOL:g} ({skipped} it cannot express)" if not failures else
              f"{name}: {len(failures)} disagreements in {compared} cases")
        for line in failures:
            print("  " + line)
        failed |= bool(failures) or compared == 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
