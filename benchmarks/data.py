"""The offline data sets, shaped an image at a time, against the same images built whole up front (as they
were before issue 27): the memory each holds and one epoch of a training loader, side by side.

    python benchmarks/data.py                  # digits at 16, 32 and 224 pixels (and the memory at 1024)
    python benchmarks/data.py --quick
"""

from __future__ import annotations

import argparse
import time

import torch
from common import write_json
from torch.utils.data import DataLoader, TensorDataset

from cortexgraph import load_spec
from cortexgraph.train.data import make_data, stacked
from cortexgraph.units import format_bytes


def spec_at(size: int):
    return load_spec({"cortexgraph": 1, "name": "bench", "input": {"channels": 1, "size": size},
                      "areas": {"A": {"channels": 2, "size": size}}, "inputs": {"A": {"at": "once", "op": "conv"}},
                      "steps": 1, "readout": {"area": "A", "head": {"classes": 10}}})


def epoch(dataset, batch: int) -> float:
    """Seconds for one shuffled pass of a training loader (no workers, as `cortexgraph train`'s default)."""
    start = time.perf_counter()
    for x, _ in DataLoader(dataset, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0)):
        x.sum()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 224])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="16 and 32 pixels only")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    sizes = [16, 32] if args.quick else args.sizes
    print(f"digits, training split, batch {args.batch}: shaped when asked (ours) against built whole (reference)")
    print(f"{'size':>5} {'held: ours':>11} {'reference':>10} {'epoch: ours':>12} {'reference':>10} {'ratio':>6}")
    rows = []
    for size in sizes:
        data = make_data("digits", spec_at(size)).train
        whole = TensorDataset(*stacked(data))  # the same images, built up front as they once were
        source = data.source  # the raw images the data set holds
        held = source.images.numel() * source.images.element_size() + source.labels.numel() * 8
        reference = whole.tensors[0].numel() * 4 + whole.tensors[1].numel() * 8
        epoch(data, args.batch), epoch(whole, args.batch)  # warm-up
        ours, theirs = min(epoch(data, args.batch) for _ in range(3)), min(epoch(whole, args.batch) for _ in range(3))
        rows.append({"size": size, "held_bytes": held, "reference_bytes": reference, "epoch_s": ours,
                     "reference_epoch_s": theirs})
        print(f"{size:>5} {format_bytes(held):>11} {format_bytes(reference):>10} {ours:>11.3f}s {theirs:>9.3f}s "
              f"{ours / theirs:>5.2f}x")
    big = make_data("digits", spec_at(1024)).train
    print(f"at 1024 pixels: ours holds {format_bytes(big.source.images.numel() * 4)}; the reference would hold "
          f"{format_bytes(len(big) * 1024 * 1024 * 4)} (not built)")
    write_json(args.json, {"data": rows})


if __name__ == "__main__":
    main()
