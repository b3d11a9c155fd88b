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

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .atomic import OutputError
from .feature_files import open_sink
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
            first = model.plan_for(steps=last, states=True).first_update.get(area)  # nothing pruned
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


def feature_shapes(model: CortexNet, at: Iterable[str], pool: Pool = None) -> dict[str, tuple]:
    """The shape of each named value for one image, (C, H, W) or (C,) pooled, by its name (`V4.t3`); every
    name checked first (the area, the step, that the area holds a value then), nothing run."""
    if pool not in (None, "avg", "max"):
        raise ValueError(f"pool is None (whole maps), 'avg' or 'max'; got {pool!r}")
    pairs = parse_at(model, at)
    model.features_plan(pairs)
    return {name_of(area, step): model.plan.shapes[area][:1] if pool else tuple(model.plan.shapes[area])
            for area, step in pairs}


def write_features(model: CortexNet, dataset: Dataset, at: Sequence[str], out: str | Path, pool: Pool = None,
                   batch_size: int = 256, device: str | torch.device = "cpu",
                   about: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Stream the features of every image of `dataset` ((image, label) pairs) to `out`: a folder of
    `AREA.tSTEP.npy` files and `labels.npy`, or an `.h5` file of such datasets; `features.json` (or the
    file's attributes) records the names, shapes, pooling, the spec and `about` (checkpoint, stimuli),
    and `"complete": true` once every image is in (`cortexgraph.feature_files.read_features` checks it).

    Everything is checked before the first batch runs: the names, the batch size, an output already there
    (replaced only with `overwrite`, and only once the new one is complete), links or devices where a
    file goes, the free space for the estimated size, another writer on the same output (refused, named).
    A failure mid-write (a full disk) is one OutputError, and leaves the output as it was."""
    import numpy as np

    if batch_size < 1:
        raise ValueError(f"the batch size must be at least 1; got {batch_size}")
    total = len(dataset)  # type: ignore[arg-type]
    if total < 1:
        raise ValueError("there are no images to write the features of (the split, or --limit, gives none)")
    model = model.to(device).eval()
    shapes = feature_shapes(model, at, pool)  # every name checked before anything is written
    meta = {"names": list(shapes), "pool": pool, "images": total, "spec": model.spec.to_dict(), **(about or {})}
    if model.spec.dt_ms:  # each feature's time, where the spec says how long a step lasts
        meta["ms"] = {name: int(name.rsplit(".t", 1)[1]) * model.spec.dt_ms for name in shapes}
    existed = Path(out).exists()
    sink = open_sink(out, shapes, total, overwrite)
    done = 0
    try:
        with torch.no_grad():
            for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
                values = features(model, x.to(device), meta["names"], pool)
                for (area, step), v in values.items():
                    sink.write(name_of(area, step), v.float().cpu().numpy())
                sink.write("labels", np.asarray(y, dtype=np.int64))
                done += len(y)
        sink.commit({**meta, "shapes": {name: [total, *shape] for name, shape in shapes.items()}
                     | {"labels": [total]}})
    except BaseException as exc:
        sink.abort()
        if (isinstance(exc, OSError) and not isinstance(exc, OutputError)) or _h5_failure(exc):
            raise OutputError(f"cannot write the features to {out}: {getattr(exc, 'strerror', None) or exc} "
                              f"(after {done:,} of {total:,} images); nothing was kept"
                              + (f", and {out} is as it was" if existed else ""),
                              refused=False) from None
        raise
    finally:
        sink.release()
    return Path(out)


def _h5_failure(exc: BaseException) -> bool:
    """h5py reports some failed writes (a full disk, a file size limit) as RuntimeError."""
    return isinstance(exc, RuntimeError) and type(exc).__module__.startswith("h5py")


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
