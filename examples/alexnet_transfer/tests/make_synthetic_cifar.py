#!/usr/bin/python3
"""Writes a small synthetic data set in CIFAR-10's binary format, for tests and timings.

Usage: make_synthetic_cifar.py DIRECTORY [--train N] [--test N] [--seed S]

DIRECTORY gets data_batch_1.bin ... data_batch_5.bin (N training images spread over the five
files) and test_batch.bin: 3073-byte records, a label byte then the 32x32 red, green and blue
planes. The classes are learnable: class c is a noisy image whose colour and stripe direction
depend on c. Needs only the standard library.
"""
import argparse
import os
import random


def image_bytes(label, rng):
    """3x32x32 bytes of a noisy, class-dependent picture."""
    red, green, blue = (label * 25) % 256, (255 - label * 25) % 256, (label * 97) % 256
    vertical = label % 2 == 0
    period = 2 + label // 2
    planes = []
    for base in (red, green, blue):
        plane = bytearray(1024)
        for y in range(32):
            for x in range(32):
                stripe = 60 if ((x if vertical else y) // period) % 2 == 0 else -60
                plane[y * 32 + x] = max(0, min(255, base + stripe + rng.randint(-40, 40)))
        planes.append(bytes(plane))
    return b"".join(planes)


def write_file(path, count, rng):
    """Writes `count` records (labels cycling through the 10 classes) to `path`."""
    with open(path, "wb") as handle:
        for index in range(count):
            label = (index * 7 + rng.randint(0, 9)) % 10
            handle.write(bytes([label]) + image_bytes(label, rng))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--train", type=int, default=100, help="training images in all (default 100)")
    parser.add_argument("--test", type=int, default=50, help="test images (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    if arguments.train < 5 or arguments.test < 1:
        parser.error("--train must be >= 5 and --test >= 1")
    rng = random.Random(arguments.seed)
    os.makedirs(arguments.directory, exist_ok=True)
    for number in range(1, 6):
        count = arguments.train // 5 + (1 if number <= arguments.train % 5 else 0)
        write_file(os.path.join(arguments.directory, f"data_batch_{number}.bin"), count, rng)
    write_file(os.path.join(arguments.directory, "test_batch.bin"), arguments.test, rng)


if __name__ == "__main__":
    main()
