"""Helpers shared by the fixture builders (fixtures_*.py)."""
import torch

REDUCTIONS = ["none", "mean", "sum"]  # index = at::Reduction code
ROUNDINGS = {"f64": torch.float64, "f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def rounded(x, dtype):
    """x rounded to dtype and back to float64: the input a low-precision test feeds in."""
    return x.to(dtype).to(torch.float64)


def record(out, key, x, grad_output, loss_fn):
    """Stores loss and input gradient of loss_fn at x rounded to each test dtype."""
    for tag, dtype in ROUNDINGS.items():
        xr = rounded(x, dtype).requires_grad_()
        loss = loss_fn(xr)
        (grad,) = torch.autograd.grad(loss, xr, grad_output)
        out[f"{key}/{tag}/loss"] = loss.detach()
        out[f"{key}/{tag}/grad"] = grad
