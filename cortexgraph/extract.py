"""Features for comparison with brains: any area's value at any step, by name, in one pass.

Names are `AREA.tSTEP` (`V4.t3`) or `AREA.all` (every step at which the area
holds a value). `features(model, x, at=...)` returns tensors keyed by (area,
step), whole or pooled over space; `write_features` streams a data set's
features to disk in chunks: one `.npy` file per name in a folder (memory-mapped,
so nothing is held whole) or one HDF5 file (`h5py`, the `hdf5` extra), with the
labels and what made them (the spec, the checkpoint, the stimuli) beside them.
`AreaLayers` names the values as layers, for extractors that hook submodules
(Brain-Score's model helpers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .model import CortexNet

Pool = Literal["avg", "max"] | None
_NAME = re.compile(r"^(?P<area>[A-Za-z_][A-Za-z0-9_]*)\.(?:t(?P<step>\d+)|(?P<all>all))$")


def parse_at(model: CortexNet, at: Iterable[str], steps: int | None = None) -> list[tuple[str, int]]:
    """(area, step) pairs from names, in the order given (`AREA.all`: every step up to `steps`, the spec's by
    default, at which the area holds a value)."""
    last = model.spec.steps if steps is None else steps
    pairs: list[tuple[str, int]] = []
    for name in at:
        found = _NAME.match(name)
        if found is None:
            raise ValueError(f"{name!r} is not a feature name; write AREA.tSTEP (V4.t3) or AREA.all")
        area = found["area"]
        if area not in model.spec.areas:
            raise ValueError(f"{name!r}: unknown area {area!r}; the areas are {', '.join(model.spec.areas)}")
        if found["all"]:
            schedule = model.plan_for(steps=last, states=True).schedule  # every update, nothing pruned
            first = next((t for t, updates in enumerate(schedule) if any(u.area == area for u in updates)), None)
            pairs += [(area, t) for t in range(first, last + 1)] if first is not None else []
        else:
            pairs.append((area, int(found["step"])))
    return list(dict.fromkeys(pairs))


def features(model: CortexNet, x: Tensor, at: Iterable[str], pool: Pool = None,
             steps: int | None = None) -> dict[tuple[str, int], Tensor]:
    """Each named (area, step) value on images `x`, in one pass of a Plan pruned to them: whole (batch, C, H,
    W), or averaged or maxed over space (batch, C)."""
    values = model.features(x, parse_at(model, at, steps))
    return {key: _pooled(v, pool) for key, v in values.items()}


def name_of(area: str, step: int) -> str:
    return f"{area}.t{step}"


def write_features(model: CortexNet, dataset: Dataset, at: Sequence[str], out: str | Path, pool: Pool = None,
                   batch_size: int = 256, device: str | torch.device = "cpu",
                   about: dict[str, Any] | None = None) -> Path:
    """Stream the features of every image of `dataset` ((image, label) pairs) to `out`: a folder of
    `AREA.tSTEP.npy` files and `labels.npy`, or an `.h5` file of such datasets; `features.json` (or the
    file's attributes) records the names, shapes, pooling, the spec and `about` (checkpoint, stimuli)."""
    import numpy as np

    out = Path(out)
    model = model.to(device).eval()
    pairs = parse_at(model, at)
    total = len(dataset)  # type: ignore[arg-type]
    meta = {"names": [name_of(*p) for p in pairs], "pool": pool, "images": total, "spec": model.spec.to_dict(),
            **(about or {})}
    sink = _HDF5(out) if out.suffix in (".h5", ".hdf5") else _NpyFolder(out)
    done = 0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            values = features(model, x.to(device), meta["names"], pool)
            for (area, step), v in values.items():
                sink.write(name_of(area, step), v.float().cpu().numpy(), done, total)
            sink.write("labels", np.asarray(y), done, total)
            done += len(y)
    sink.close(meta)
    return out


class AreaLayers(nn.Module):
    """A model whose (area, step) values are layers named `AREA.tSTEP`, as layer-based extractors find them
    (Brain-Score's `PytorchWrapper`, any tool that puts forward hooks on submodules by dotted name).

    `layers.V4.t3` is an identity module; a call runs the model once, on a Plan pruned to the layers that
    have forward hooks (every layer where none has), and passes each value through its layer, so a hook on
    it sees the value. The call returns the values by (area, step). The model is `layers.cortexnet`.

        from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper, load_preprocess_images
        layers = AreaLayers(build("runs/x/checkpoint.pt").eval())
        wrapper = PytorchWrapper(layers, functools.partial(load_preprocess_images, image_size=224),
                                 identifier="my-model")
        activations = wrapper(image_paths, layers=["V4.t3", "IT.t8"])
    """

    def __init__(self, model: CortexNet, at: Iterable[str] | None = None):
        super().__init__()
        if "cortexnet" in model.spec.areas:
            raise ValueError("an area named 'cortexnet' would hide the model in AreaLayers; rename it")
        self.cortexnet = model
        names = at if at is not None else [f"{area}.all" for area in model.spec.areas]
        for area, step in parse_at(model, names):
            if area not in self._modules:
                self.add_module(area, nn.Module())
            self._modules[area].add_module(f"t{step}", nn.Identity())

    def forward(self, x: Tensor) -> dict[tuple[str, int], Tensor]:
        layers = {(area, int(name[1:])): layer for area in self.cortexnet.spec.areas if area in self._modules
                  for name, layer in self._modules[area].named_children()}
        hooked = [key for key, layer in layers.items() if layer._forward_hooks]
        values = self.cortexnet.features(x, hooked or list(layers))
        return {key: layers[key](value) for key, value in values.items()}


def _pooled(v: Tensor, pool: Pool) -> Tensor:
    if pool is None:
        return v
    if pool == "avg":
        return v.mean((2, 3))
    if pool == "max":
        return v.amax((2, 3))
    raise ValueError(f"pool is None (whole maps), 'avg' or 'max'; got {pool!r}")


class _NpyFolder:
    """One memory-mapped .npy file per name, filled a chunk at a time."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.arrays = folder, {}

    def write(self, name: str, chunk: Any, start: int, total: int) -> None:
        from numpy.lib.format import open_memmap

        if name not in self.arrays:
            self.arrays[name] = open_memmap(self.folder / f"{name}.npy", mode="w+", dtype=chunk.dtype,
                                            shape=(total, *chunk.shape[1:]))
        self.arrays[name][start:start + len(chunk)] = chunk

    def close(self, meta: dict[str, Any]) -> None:
        shapes = {}
        for name, array in self.arrays.items():
            array.flush()
            shapes[name] = list(array.shape)
        (self.folder / "features.json").write_text(json.dumps({**meta, "shapes": shapes}, indent=2) + "\n")


class _HDF5:
    """One HDF5 dataset per name, filled a chunk at a time; what made them in the file's attributes."""

    def __init__(self, path: Path):
        try:
            import h5py
        except ImportError:
            raise ValueError(f"writing {path.name} needs h5py: pip install 'cortexgraph[hdf5]' (or write to a "
                             "folder of .npy files)") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = h5py.File(path, "w")

    def write(self, name: str, chunk: Any, start: int, total: int) -> None:
        if name not in self.file:
            self.file.create_dataset(name, shape=(total, *chunk.shape[1:]), dtype=chunk.dtype,
                                     chunks=(min(len(chunk), total), *chunk.shape[1:]))
        self.file[name][start:start + len(chunk)] = chunk

    def close(self, meta: dict[str, Any]) -> None:
        self.file.attrs["features"] = json.dumps(meta)
        self.file.close()
