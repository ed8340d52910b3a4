"""Fixtures of the gradient harmonizing losses (GHM-C, GHM-R): a Python port of the reference
algorithm, written from the semantics of mmdetection's GHMC/GHMR (issue 4), run over
sequences of calls so that the moving average of the bin counts is checked.

Every case is a sequence of steps (batches); each step stores its inputs and, for the inputs
rounded to each test dtype, the loss, the input gradient and acc_sum after the call. Inputs are
nudged so that no gradient norm lies within 1e-4 of an inner bin edge in any rounding: the
tests compute g in float32, the reference in float64, and both must put every element in the
same bin.

Keys: "{family}/count"; "{family}/{k}/options" = [bins, momentum, loss_weight, mu];
"{family}/{k}/steps"; "{family}/{k}/{s}/input|target|label_weight|grad_output";
"{family}/{k}/{s}/{tag}/loss|grad|acc_sum", family in (ghmc, ghmr).
"""
import torch
import torch.nn.functional as F

from reference_common import ROUNDINGS, rounded

MARGIN = 1e-4
# The roundings the C++ tests feed: float32 (compared with the f64 values) and those of ROUNDINGS.
CHECKED_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def edges_of(bins):
    """mmdetection's edges: float32 arange(bins + 1) / bins, the last one raised by 1e-6 in float32."""
    edges = torch.arange(bins + 1).float() / bins
    edges[-1] += 1e-6
    return edges.double()


def expand_labels(x, y, lw):
    """mmdetection's _expand_onehot_labels: int labels [N] -> one-hot [N, C] (labels outside
    [0, C) give a zero row), label weights [N] -> [N, C]."""
    c = x.shape[1]
    onehot = (y.unsqueeze(1) == torch.arange(c)).double()
    return onehot, None if lw is None else lw.view(-1, 1).expand(-1, c)


def loss_and_gradient_norm(family, x, y, mu):
    """Per-element loss (differentiable in x) and gradient norm g (detached)."""
    if family == "ghmc":
        return F.binary_cross_entropy_with_logits(x, y, reduction="none"), (x.detach().sigmoid() - y).abs()
    d = x - y
    return torch.sqrt(d * d + mu * mu) - mu, (d / torch.sqrt(mu * mu + d * d)).abs().detach()


def ghm_step(family, x, y, lw, acc_sum, bins, momentum, loss_weight, mu):
    """One call of the reference algorithm, per-bin loop as mmdetection writes it, in float64.
    acc_sum (float32 [bins], like mmdetection's buffer) is updated in place: the running count
    is computed in float64, stored in float32, and the weight uses the stored value."""
    if family == "ghmc" and y.dtype == torch.int64:
        y, lw = expand_labels(x, y, lw)
    elem, g = loss_and_gradient_norm(family, x, y, mu)
    lw = torch.ones_like(elem) if lw is None else lw
    edges = edges_of(bins)
    valid = lw > 0
    # GHM-C counts the valid elements; GHM-R sums the label weights (mmdetection's choice).
    tot = max((valid.double().sum() if family == "ghmc" else lw.double().sum()).item(), 1.0)
    weights = torch.zeros_like(elem)
    n = 0
    for i in range(bins):
        inds = (g >= edges[i]) & (g < edges[i + 1]) & valid
        num_in_bin = inds.sum().item()
        if num_in_bin > 0:
            if momentum > 0:
                acc_sum[i] = (momentum * acc_sum[i].double() + (1 - momentum) * num_in_bin).float()
                weights[inds] = tot / acc_sum[i].double().item()
            else:
                weights[inds] = tot / num_in_bin
            n += 1
    if n > 0:
        weights = weights / n
    return (elem * weights).sum() / tot * loss_weight


def inner_edge_distance(g, bins):
    """Distance of each g to the nearest inner edge (1/bins ... (bins-1)/bins); inf for bins = 1."""
    if bins == 1:
        return torch.full_like(g, float("inf"))
    inner = edges_of(bins)[1:-1]
    return (g.unsqueeze(-1) - inner).abs().min(-1).values


def nudge(family, x, y, bins, mu, gen):
    """Moves the elements whose g, in any tested rounding of x, lies within MARGIN of an inner edge."""
    for _ in range(200):
        bad = torch.zeros(x.shape, dtype=torch.bool)
        for dtype in CHECKED_DTYPES:
            xr = rounded(x, dtype)
            yr = y if family == "ghmc" and y.dtype == torch.int64 else rounded(y, dtype)
            yy = expand_labels(xr, yr, None)[0] if yr.dtype == torch.int64 else yr
            _, g = loss_and_gradient_norm(family, xr, yy, mu)
            bad |= inner_edge_distance(g, bins) < MARGIN
        if not bad.any():
            return x
        x = x + bad * 0.05 * (1 + x.abs()) * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    raise RuntimeError("could not move the inputs away from the bin edges")


def ghmc_step_inputs(gen, n, c, target_kind, weight_kind, extreme):
    x = torch.randn(n, c, generator=gen, dtype=torch.float64) * 3
    if extreme:
        pick = torch.rand(n, c, generator=gen) < 0.3
        x = torch.where(pick, torch.sign(x) * 1e4, x)
    if target_kind == "labels":
        y = torch.randint(-1, c + 1, (n,), generator=gen)  # -1 and c: background rows
    elif target_kind == "soft":
        y = torch.randint(0, 9, (n, c), generator=gen).double() / 8  # exact in every dtype
    else:
        y = (torch.rand(n, c, generator=gen, dtype=torch.float64) < 0.3).double()
    shape = (n,) if target_kind == "labels" else (n, c)
    lw = label_weights(gen, shape, weight_kind)
    return x, y, lw


def ghmr_step_inputs(gen, n, c, weight_kind, extreme):
    y = torch.randn(n, c, generator=gen, dtype=torch.float64)
    # Targets exact in bfloat16 and float16 (normal range), so the tests' rounding keeps them.
    y = y.to(torch.bfloat16).double()
    y = torch.where(y.abs() < 1e-3, torch.zeros_like(y), y)
    scale = 10 ** (torch.rand(n, c, generator=gen, dtype=torch.float64) * 3.5 - 3)
    d = torch.randn(n, c, generator=gen, dtype=torch.float64) * scale
    if extreme:
        pick = torch.rand(n, c, generator=gen) < 0.3
        d = torch.where(pick, torch.sign(d) * 1e4, d)
    lw = label_weights(gen, (n, c), weight_kind)
    return y + d, y, lw


def label_weights(gen, shape, kind):
    if kind == "none":
        return None
    if kind == "all_masked":
        return torch.zeros(shape, dtype=torch.float64)
    if kind == "mask":
        return (torch.rand(shape, generator=gen, dtype=torch.float64) > 0.25).double()
    # Fractional weights: GHM-C uses only their sign, GHM-R sums them into tot.
    values = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    return values[torch.randint(0, 4, shape, generator=gen)]


# (bins, momentum, loss_weight, target kind, [label-weight kind per step], extreme logits, C)
GHMC_CASES = [
    (10, 0.0, 1.0, "binary", ["none"] * 4, False, 5),
    (10, 0.75, 1.0, "binary", ["mask", "mask", "none", "mask", "mask"], False, 5),
    (30, 0.7, 1.0, "soft", ["mask", "fractional", "mask", "fractional"], False, 7),
    (1, 0.5, 1.0, "binary", ["mask"] * 4, False, 4),
    (100, 0.9, 2.5, "binary", ["mask"] * 4, False, 3),  # mostly empty bins
    (10, 0.75, 1.0, "labels", ["none", "mask", "fractional", "mask"], False, 6),
    (10, 0.75, 1.0, "binary", ["mask", "all_masked", "mask", "all_masked", "mask"], False, 5),
    (10, 0.0, 1.0, "binary", ["mask", "all_masked", "mask", "mask"], False, 5),
    (10, 0.75, 0.5, "binary", ["mask"] * 4, True, 6),  # extreme logits
    (5, 0.0, 1.0, "labels", ["mask"] * 4, True, 4),
]

# (bins, momentum, loss_weight, mu, [label-weight kind per step], extreme, C)
GHMR_CASES = [
    (10, 0.0, 1.0, 0.02, ["none"] * 4, False, 4),
    (10, 0.7, 10.0, 0.02, ["mask", "mask", "none", "mask", "mask"], False, 4),
    (5, 0.75, 1.0, 0.1, ["fractional"] * 4, False, 8),
    (1, 0.5, 1.0, 0.02, ["mask"] * 4, False, 4),
    (10, 0.7, 1.0, 0.02, ["mask", "all_masked", "mask", "mask"], False, 4),
    (30, 0.9, 2.0, 0.5, ["mask"] * 4, True, 4),
]

BATCH_SIZES = [6, 4, 7, 5, 6]


def run_sequence(out, prefix, family, steps, bins, momentum, loss_weight, mu, gen):
    """Stores the steps' inputs and, for each rounding, the sequence of losses, gradients and acc_sum."""
    for s, (x, y, lw) in enumerate(steps):
        key = f"{prefix}/{s}"
        out[f"{key}/input"] = x
        out[f"{key}/target"] = y
        if lw is not None:
            out[f"{key}/label_weight"] = lw
        out[f"{key}/grad_output"] = torch.randn((), generator=gen, dtype=torch.float64)
    for tag, dtype in ROUNDINGS.items():
        acc_sum = torch.zeros(bins, dtype=torch.float32)
        for s, (x, y, lw) in enumerate(steps):
            key = f"{prefix}/{s}"
            xr = rounded(x, dtype).requires_grad_()
            loss = ghm_step(family, xr, y, lw, acc_sum, bins, momentum, loss_weight, mu)
            (grad,) = torch.autograd.grad(loss, xr, out[f"{key}/grad_output"])
            out[f"{key}/{tag}/loss"] = loss.detach()
            out[f"{key}/{tag}/grad"] = grad
            out[f"{key}/{tag}/acc_sum"] = acc_sum.clone()
    out[f"{prefix}/options"] = torch.tensor([bins, momentum, loss_weight, mu], dtype=torch.float64)
    out[f"{prefix}/steps"] = torch.tensor(len(steps))


def ghm_cases(gen):
    out = {}
    for k, (bins, momentum, loss_weight, target_kind, weight_kinds, extreme, c) in enumerate(GHMC_CASES):
        steps = []
        for s, weight_kind in enumerate(weight_kinds):
            x, y, lw = ghmc_step_inputs(gen, BATCH_SIZES[s], c, target_kind, weight_kind, extreme)
            steps.append((nudge("ghmc", x, y, bins, 0.0, gen), y, lw))
        run_sequence(out, f"ghmc/{k}", "ghmc", steps, bins, momentum, loss_weight, 0.0, gen)
    out["ghmc/count"] = torch.tensor(len(GHMC_CASES))
    for k, (bins, momentum, loss_weight, mu, weight_kinds, extreme, c) in enumerate(GHMR_CASES):
        steps = []
        for s, weight_kind in enumerate(weight_kinds):
            x, y, lw = ghmr_step_inputs(gen, BATCH_SIZES[s], c, weight_kind, extreme)
            steps.append((nudge("ghmr", x, y, bins, mu, gen), y, lw))
        run_sequence(out, f"ghmr/{k}", "ghmr", steps, bins, momentum, loss_weight, mu, gen)
    out["ghmr/count"] = torch.tensor(len(GHMR_CASES))
    return out


FIXTURES = {"ghm.pt": ghm_cases}
