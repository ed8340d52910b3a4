#!/usr/bin/python3
"""Writes the reference fixtures of the torchloss tests from PyTorch's own functions or the
published formulas, evaluated in float64 (Debian's python3-torch; run with /usr/bin/python3).

    generate_fixtures.py [--out-dir DIR]      write every fixture file
    generate_fixtures.py --check [--out-dir]  exit 1 if a committed fixture differs from what
                                              this script produces now (stale fixtures)
    generate_fixtures.py --agree [--out-dir]  exit 1 unless what this script produces with the
                                              torch it runs on (e.g. PyPI's 2.x) agrees with the
                                              committed fixtures (written with Debian's 1.13):
                                              bit for bit, or within AGREE_RTOL/AGREE_ATOL for
                                              floating tensors; prints how many differ and by how much

Each fixture file is a plain dict {name: tensor} saved with torch.save (readable by
torch::pickle_load). Builders live in fixtures_*.py beside this script, one module per
loss family, each with a FIXTURES dict {file name: builder(generator) -> dict}. A case `k` has keys "k/input", "k/target", ..., and its expected values
for inputs rounded to each dtype: "k/f64/loss", "k/f64/grad", "k/f32/...", "k/f16/...",
"k/bf16/...".
"""
import argparse
import glob
import importlib
import os
import sys

import torch


def discover():
    """Every fixtures_*.py module beside this script contributes its FIXTURES {file: builder}."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    fixtures = {}
    for module_file in sorted(glob.glob(os.path.join(here, "fixtures_*.py"))):
        module = importlib.import_module(os.path.splitext(os.path.basename(module_file))[0])
        for name, builder in module.FIXTURES.items():
            assert name not in fixtures, f"two builders write {name}"
            fixtures[name] = builder
    return fixtures


FIXTURES = discover()


def build(name):
    gen = torch.Generator().manual_seed(20261130 + sum(map(ord, name)))
    return FIXTURES[name](gen)


def same(a, b):
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


# Float64 results of two PyTorch versions may differ in the last bits (other vectorised loops
# and summation orders); any larger difference is a change of semantics and fails.
AGREE_RTOL = 1e-10
AGREE_ATOL = 1e-12


def disagreements(fresh, committed):
    """(keys that differ beyond tolerance, count of tensors not bit-identical, largest abs diff)."""
    bad, inexact, largest = sorted(fresh.keys() ^ committed.keys()), 0, 0.0
    for key in fresh.keys() & committed.keys():
        a, b = fresh[key], committed[key]
        if a.dtype != b.dtype or a.shape != b.shape:
            bad.append(key)
        elif not torch.equal(a, b):
            inexact += 1
            if not a.is_floating_point() or not torch.allclose(a, b, rtol=AGREE_RTOL, atol=AGREE_ATOL, equal_nan=True):
                bad.append(key)
            finite = torch.isfinite(a) & torch.isfinite(b)
            if a.is_floating_point() and finite.any():
                largest = max(largest, (a[finite] - b[finite]).abs().max().item())
    return bad, inexact, largest


def agree(names, out_dir):
    """--agree: the committed fixtures against this torch's results, within tolerance."""
    failed, total, inexact, largest = [], 0, 0, 0.0
    for name in names:
        fresh = build(name)
        bad, n_inexact, n_largest = disagreements(fresh, torch.load(os.path.join(out_dir, name)))
        total += len(fresh)
        inexact += n_inexact
        largest = max(largest, n_largest)
        failed += [f"{name}:{key}" for key in bad]
    print(f"torch {torch.__version__}: {total - inexact} of {total} fixture tensors bit-identical to the "
          f"committed ones, {inexact} differ by at most {largest:.3g} (tolerance rtol {AGREE_RTOL}, atol {AGREE_ATOL})")
    if failed:
        print("disagree beyond tolerance: " + ", ".join(failed[:20]) + (" ..." if len(failed) > 20 else ""))
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
    parser.add_argument("--check", action="store_true", help="compare with the committed fixtures instead of writing")
    parser.add_argument("--agree", action="store_true", help="compare with tolerance (another torch version)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # reductions in a fixed order
    if args.agree:
        return agree(FIXTURES, args.out_dir)
    stale = []
    for name in FIXTURES:
        path = os.path.join(args.out_dir, name)
        fresh = build(name)
        if args.check:
            if not os.path.exists(path) or not same(fresh, torch.load(path)):
                stale.append(name)
        else:
            os.makedirs(args.out_dir, exist_ok=True)
            torch.save(fresh, path)
    if stale:
        print("stale fixtures (rerun tests/reference/generate_fixtures.py and commit): " + ", ".join(stale))
        return 1
    print("fixtures are current" if args.check else f"wrote {len(FIXTURES)} fixture files to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
