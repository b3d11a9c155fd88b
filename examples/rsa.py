"""Representational similarity between areas and steps: how alike are V1, V2 and V4 at each step, and how
does each area's representation change as the network runs on? The digits network (demo/frnn3-digits) is
trained, then every area's value at every step it holds one is taken out in one pass
(`cortexgraph.features`, averaged over space) for the test images; each (area, step) gets a representational
dissimilarity matrix (RDM: 1 - the Pearson correlation between the mean patterns of the ten digits), and
every pair of RDMs is compared (the Spearman correlation of their upper triangles).

    python examples/rsa.py                  # digits, on a CPU
"""

from __future__ import annotations

import numpy as np
import torch
from _common import machine, options, run, write_csv

import cortexgraph
from cortexgraph import build
from cortexgraph.train.data import make_data, stacked


def rdm(patterns: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 - correlation between the classes' mean patterns."""
    means = np.stack([patterns[labels == c].mean(0) for c in np.unique(labels)])
    return 1 - np.corrcoef(means)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    upper = np.triu_indices_from(a, k=1)
    ranks = [np.argsort(np.argsort(m[upper])) for m in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def main() -> None:
    args = options("rsa", __doc__, epochs=8)
    args.size = None
    print(f"representational similarity on {args.data}, {args.epochs} epochs ({machine()})")
    run("demo/frnn3-digits", args, "frnn3-digits")
    model = build(f"{args.out}/frnn3-digits/checkpoint.pt").eval()
    images, labels = stacked(make_data(args.data, model.spec, args.data_dir, args.seed).test)
    with torch.no_grad():
        values = cortexgraph.features(model, images, [f"{a}.all" for a in model.spec.areas], pool="avg")
    order = sorted(values, key=lambda key: (list(model.spec.areas).index(key[0]), key[1]))  # area, then step
    names = [f"{area}.t{step}" for area, step in order]
    rdms = {name: rdm(values[key].numpy(), labels.numpy()) for name, key in zip(names, order)}
    similarity = np.array([[spearman(rdms[a], rdms[b]) for b in names] for a in names])
    write_csv(f"{args.results}/rsa.csv", [{"a": a, "b": b, "spearman": similarity[i, j]}
                                          for i, a in enumerate(names) for j, b in enumerate(names) if i < j])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(similarity, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title("RDM similarity (Spearman) between areas and steps")
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(f"{args.results}/rsa.png", dpi=120)
    print(f"wrote {args.results}/rsa.png")
    readout = f"{model.spec.readout.area}.t{model.spec.steps}"  # what the head reads
    for name in names:
        if name != readout:
            print(f"  {name}: {similarity[names.index(name), names.index(readout)]:+.2f} with {readout}")


if __name__ == "__main__":
    main()
