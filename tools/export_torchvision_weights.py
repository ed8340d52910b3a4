#!/usr/bin/python3
"""Exports torchvision's AlexNet weights for the C++ example examples/alexnet_transfer.

Usage:
  export_torchvision_weights.py [--output PATH]                  ImageNet weights (downloads once)
  export_torchvision_weights.py --random [--seed N] [--output PATH]   random weights, offline

Writes dict(alexnet(weights="IMAGENET1K_V1").state_dict()) with torch.save: a plain dict of
name -> tensor (torch::pickle_load in C++ cannot read the OrderedDict that state_dict()
returns). --random exports a freshly initialised torchvision AlexNet instead (seeded, no
network), for tests and smoke runs. --check-io PATH also saves a seeded input batch and the
model's eval-mode logits on it, so the C++ model can be checked against torchvision.

Works with torchvision 0.13 and newer (the `weights=` API; Debian 12 has 0.14) and falls back
to `pretrained=` on older versions.
"""
import argparse
import os
import sys

import torch
import torchvision

DEFAULT_OUTPUT = "models/alexnet_imagenet1k_v1.pt"
# Input sizes of --check-io: ImageNet's, and a small odd one where the adaptive average
# pooling has to spread a 2x2 map over 6x6 bins.
CHECK_SIZES = {"": 224, "_small": 100}


def build_alexnet(random_weights):
    """torchvision's AlexNet with ImageNet weights, or randomly initialised."""
    alexnet = torchvision.models.alexnet
    try:
        if random_weights:
            return alexnet(weights=None)
        weights = getattr(torchvision.models, "AlexNet_Weights", None)
        return alexnet(weights=weights.IMAGENET1K_V1 if weights is not None else "IMAGENET1K_V1")
    except TypeError:
        # torchvision < 0.13 has no `weights` argument.
        return alexnet(pretrained=not random_weights)


def save_plain_dict(state_dict, path):
    """Saves a state dict as a plain dict of contiguous CPU tensors, via a temporary file."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    plain = {name: tensor.detach().cpu().contiguous() for name, tensor in state_dict.items()}
    temporary = path + ".tmp"
    torch.save(plain, temporary)
    os.replace(temporary, path)


def check_io(model, seed):
    """A seeded input batch per CHECK_SIZES entry and the model's eval-mode logits on it."""
    generator = torch.Generator().manual_seed(seed + 1)
    model.eval()
    result = {}
    with torch.no_grad():
        for suffix, size in CHECK_SIZES.items():
            images = torch.randn(2, 3, size, size, generator=generator)
            result["input" + suffix] = images
            result["logits" + suffix] = model(images)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help=f"where to write the weights (default {DEFAULT_OUTPUT})")
    parser.add_argument("--random", action="store_true", help="export a randomly initialised model (offline)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random and of --check-io's input (default 0)")
    parser.add_argument("--check-io", metavar="PATH", help="also save an input batch and its logits to PATH")
    arguments = parser.parse_args()

    torch.manual_seed(arguments.seed)
    try:
        model = build_alexnet(arguments.random)
    except Exception as error:  # noqa: BLE001  (downloads fail in many ways)
        sys.exit(
            f"export_torchvision_weights.py: error: cannot get torchvision's ImageNet AlexNet weights ({error}); "
            "this needs the internet once (they are cached in ~/.cache/torch/hub), or use --random"
        )
    save_plain_dict(model.state_dict(), arguments.output)
    count = sum(tensor.numel() for tensor in model.state_dict().values())
    kind = f"random (seed {arguments.seed})" if arguments.random else "ImageNet (IMAGENET1K_V1)"
    print(f"{arguments.output}: AlexNet, {kind}, {len(model.state_dict())} tensors, {count} values, "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    if arguments.check_io:
        save_plain_dict(check_io(model, arguments.seed), arguments.check_io)
        print(f"{arguments.check_io}: input batches and their logits")


if __name__ == "__main__":
    main()
