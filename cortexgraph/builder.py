"""`build`: a spec or a training checkpoint -> its module, through the front door (`compile`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .analysis import Limits
from .checkpoint import is_checkpoint_path, load_weights, read_checkpoint
from .compiler import compile
from .construct import construct
from .model import CortexNet
from .source import SourceMap
from .spec import parse_spec


def build(spec: Any, *, limits: Limits = Limits(), allow_imports: bool = False, allow_nonfinite: bool = False,
          **overrides: Any) -> CortexNet:
    """Compile a spec into a module.

    `spec` is a path, a bundled spec name (`liao2016/frnn4-cifar`), YAML text, a
    dict or a Spec; or a checkpoint (`.pt`, `.pth`, `.ckpt`) written by
    `cortexgraph train`, which restores the trained model from the file alone.
    The keywords (`cortexgraph.overrides.Overrides`) override the spec's `steps`,
    readout `classes`, `defaults.share` and `defaults.norm`; `size` rescales the
    input and every area by the same factor (a 224-pixel ImageNet spec at
    `size=32`); `checkpoint` recomputes each step's intermediate values in the
    backward pass rather than keeping them (much less memory for many steps,
    about a third more time). Specs never import code unless `allow_imports`
    lets ops named `package.module:op` import their module. A checkpoint whose
    weights or buffers are not finite is refused (CheckpointError) unless
    `allow_nonfinite`. A SpecError says what is wrong.
    """
    if is_checkpoint_path(spec) and Path(spec).is_file():
        if any(v is not None for v in overrides.values()):
            raise ValueError("a checkpoint's model is built as it was trained: overrides do not apply")
        return load_model(spec, allow_imports=allow_imports, allow_nonfinite=allow_nonfinite)
    return construct(compile(spec, limits=limits, allow_imports=allow_imports, **overrides))


def load_model(path: str | Path, allow_imports: bool = False, allow_nonfinite: bool = False) -> CortexNet:
    """The model saved in a checkpoint; its spec is validated again before anything is built, its values
    checked for NaN and infinity (`allow_nonfinite` lets them through)."""
    payload = read_checkpoint(path)
    spec = parse_spec(payload["spec"], SourceMap(f"{path} (its spec)"))
    model = construct(compile(spec, allow_imports=allow_imports))
    load_weights(model, payload, path, allow_nonfinite)
    return model
