"""The cell registry: what an area does with its drive (docs/semantics.md, "Cells"), without importing torch.

An area's new value is its cell applied to the drive `D` (the sum of its
driving edges' contributions, times `1 + g(M)` where modulating edges fire)
and, for cells with state, to its previous value. `sum` (the default) is `D`
itself and updates only where something fires; every other cell runs at every
step from the area's arrival (from step 0 under `silence: zeros`), on a drive
of 0 where nothing fires. As with ops, parameters and sizes live here; the
module (`cortexgraph.ops.cells`) is loaded when a model is built.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, PositiveInt, field_validator, model_validator

from ..errors import did_you_mean, known_list
from .norm_spec import BATCH_PER_STEP, NormSetting
from .op_params import Activation, NoParams, Params, Shape, Weights, _odd, param_text
from .registry import Registry, UnknownOp


class LRNParams(Params):
    """A local response normalisation across channels (torch.nn.LocalResponseNorm's convention):
    `a_c / (k + alpha / size * sum of a_c'^2 over the size channels around c) ** beta`. TensorFlow's and
    Spoerer et al.'s alpha (no division by the window) is torch's alpha / size."""

    size: PositiveInt = 5
    alpha: float = Field(1e-4, gt=0)
    beta: float = Field(0.75, gt=0)
    k: float = Field(1.0, gt=0)


class ActParams(Params):
    """`act`: the drive normalised, then activated: `act(norm_t(D))` (BLT's `relu(BN_t(b + l + t))`); with
    `lrn`, a local response normalisation after the activation: `lrn(act(norm_t(D)))` (Spoerer et al. 2017)."""

    norm: NormSetting = Field(BATCH_PER_STEP, description="`shared`, `none`, or a kind")
    act: Activation | None = Field(None, description="default: `relu`; defaults.activation is the edges'")
    lrn: LRNParams | None = Field(None, description="a local response normalisation after `act`")


class ConvCellParams(ActParams):
    """`conv`: `act(norm_t(conv(D)))`, a conv that keeps the area's shape (CORnet-R/RT's cell)."""

    kernel: int = 3
    bias: bool = False

    _kernel = field_validator("kernel")(_odd)


FLOAT32_MAX = 3.4028234663852886e38


def _float32(x: float) -> float:
    """`x` rounded to float32 (without torch: the cell registry is read by `compile`)."""
    return struct.unpack("f", struct.pack("f", x))[0]


class LeakyParams(Params):
    """`leaky`: `h = (1 - a) h_prev + a act(D)`, `a = dt / tau` (a continuous-time area, Euler steps)."""

    tau: float = Field(2.0, gt=0, description="above dt")
    dt: float = Field(1.0, gt=0)
    learn_tau: bool = Field(False, description="learned, kept above dt: dt + softplus(raw)")
    per_channel: bool = Field(False, description="one tau per channel")
    act: Activation | None = Field(None, description="default: `relu`")

    @model_validator(mode="after")
    def _tau_above_dt(self) -> LeakyParams:
        if self.tau <= self.dt:
            raise ValueError(f"tau ({self.tau:g}) must be above dt ({self.dt:g}): a leaky area with a <= 1 "
                             "integrates; a >= 1 overshoots")
        if self.tau > FLOAT32_MAX:
            raise ValueError(f"tau ({self.tau:g}) is more than float32 holds ({FLOAT32_MAX:.3g})")
        if _float32(1 - self.dt / self.tau) == 1.0:  # models compute in float32 (or less)
            raise ValueError(f"dt / tau is {self.dt / self.tau:.3g}: in float32, 1 - dt/tau rounds to 1, so the "
                             "area would never change; choose a tau closer to dt")
        return self


class GatedParams(Params):
    """`gru`, `lstm`, `rgc`: gates are convs of the drive, the previous value and (rgc) the memory. With
    `layer_norm`, a layer norm over the channels at each position on each pre-activation (PyTorchTNN's
    `layernorm`; off there too)."""

    kernel: int = 3
    bias: bool = True
    layer_norm: bool = False

    _kernel = field_validator("kernel")(_odd)


class GRUParams(GatedParams):
    """`gru`: `reset_bias` is added to the reset gate's pre-activation (PyTorchTNN's GRUCell adds 1.0)."""

    reset_bias: float = Field(0.0, description="PyTorchTNN's: 1")


class LSTMParams(GatedParams):
    """`lstm`: `forget_bias` is added to the forget gate's pre-activation (PyTorchTNN's LSTMCell adds 1.0)."""

    forget_bias: float = Field(0.0, description="PyTorchTNN's: 1")


class RGCParams(GatedParams):
    """`rgc`: the memory has `memory_channels` (PyTorchTNN's `cell_depth`; default the area's channels)."""

    memory_channels: PositiveInt | None = Field(None, description="default: the area's; PyTorchTNN's `cell_depth`")


def _act_count(shape: Shape, p: ActParams) -> Weights:
    return Weights(norm_channels=shape[0])


def _conv_count(shape: Shape, p: ConvCellParams) -> Weights:
    c = shape[0]
    return Weights(own=c * c * p.kernel**2 + (c if p.bias else 0), norm_channels=c)


def _leaky_count(shape: Shape, p: LeakyParams) -> Weights:
    return Weights(own=(shape[0] if p.per_channel else 1) if p.learn_tau else 0)


def _gated_count(gates: int, norms: int) -> Callable[[Shape, GatedParams], Weights]:
    """`gates` convs from [D, h] (2c channels) to c, and `norms` layer norms of c channels where asked for."""
    def count(shape: Shape, p: GatedParams) -> Weights:
        c = shape[0]
        return Weights(own=gates * (2 * c * c * p.kernel**2 + (c if p.bias else 0)) + p.layer_norm * norms * 2 * c)
    return count


def _rgc_count(shape: Shape, p: RGCParams) -> Weights:
    c = shape[0]
    m = p.memory_channels or c
    convs = [(c, m), (m, m), (c, m), (c, c), (m, c)]  # D, c and h to the memory; h and c to the value
    return Weights(own=sum(cin * cout * p.kernel**2 + (cout if p.bias else 0) for cin, cout in convs)
               + p.layer_norm * 2 * (m + c))


def _no_count(shape: Shape, p: Params) -> Weights:
    return Weights()


@dataclass(frozen=True)
class CellDef:
    """What a cell name means."""

    name: str
    module: str | type | None  # "package.module:Class" or the class, built as Class(ctx); None for `sum`
    params: type[Params] = NoParams
    runs_every_step: bool = True  # False only for `sum`: it updates where something fires
    reads_state: bool = True  # its new value depends on its previous one (and it keeps a memory, if it has one)
    count: Callable[[Shape, Any], Weights] | None = _no_count  # None: measured on the meta device
    doc: str = ""
    inputs: tuple[str, ...] = ()  # named inputs besides the drive, which edges reach with `into` (rgc: out_gate)
    # What makes it nonlinear: "none" (linear), ACT (its `act` parameter, relu unless given), or the
    # functions it applies ("sigmoid, tanh"); the summary shows it, and a loop with none is warned of.
    nonlinearity: str = "its own"

    def load(self) -> type:
        if self.module is None:
            raise ValueError(f"the {self.name} cell has no module: the runner sums the drive itself")
        if isinstance(self.module, type):
            return self.module
        path, _, attr = self.module.partition(":")
        return getattr(importlib.import_module(path), attr)


_CELLS: Registry[CellDef] = Registry("cell")


def register_cell(name: str, module: type, *, params: type[Params] = NoParams, reads_state: bool = True,
                  count: Callable[[Shape, Any], Weights] | None = None, doc: str = "", nonlinearity: str = "its own",
                  inputs: tuple[str, ...] = (), replace: bool = False) -> CellDef:
    """Register a cell so that areas can name it (`cell: name` or `cell: {name: {param: value}}`).

    `module` is an `nn.Module` class built as `module(ctx)` (a `cortexgraph.ops.cells.CellContext`:
    the area's shape, the steps the cell runs at, the validated parameters as `ctx.params`) and called
    as `cell(drive, h, memory, step) -> (value, memory)`: `drive` and the previous value `h` are
    tensors of the area's shape (`h` is None at the area's first update: zeros), `memory` is whatever the
    cell returned last time besides its value (None at first; an LSTM's cell state). A registered cell
    runs at every step from the area's arrival. `count(shape, params) -> Weights` sizes it without
    building it; without it, a registered cell's parameters are counted when the model is built.
    `nonlinearity` says what makes it nonlinear, for the summary ("none" where it is linear). `inputs`
    names inputs besides the drive: an edge with `into: NAME` adds into it, and the cell is called with
    `NAME=tensor` where one fires (as the rgc's `out_gate`).
    """
    cell = CellDef(name, module, params, True, reads_state, count, doc, tuple(inputs), nonlinearity)
    return _CELLS.add(name, cell, replace=replace)


def unregister_cell(name: str) -> None:
    _CELLS.remove(name)


def lookup_cell(name: str) -> CellDef:
    found = _CELLS.get(name)
    if found is not None:
        return found
    known = _CELLS.known()
    raise UnknownOp(f"unknown cell {name!r}", did_you_mean(name, known) or f"known: {known_list(known)}")


def known_cells() -> list[str]:
    return _CELLS.known()


_MODULES = "cortexgraph.ops.cells"
ACT = "act"  # a cell's nonlinearity is its `act` parameter
CELL_ACTIVATION = "relu"  # the `act` of a cell that gives none (defaults.activation is the edges')

BUILT_IN = (
    CellDef("sum", None, runs_every_step=False, reads_state=False,
            doc="`D`, where something fires (the area keeps its value otherwise)", nonlinearity="none"),
    CellDef("act", f"{_MODULES}:ActCell", ActParams, reads_state=False, count=_act_count,
            doc="`act(norm_t(D))`, then `lrn` where given", nonlinearity=ACT),
    CellDef("conv", f"{_MODULES}:ConvCell", ConvCellParams, reads_state=False, count=_conv_count,
            doc="`act(norm_t(conv(D)))`, then `lrn` where given", nonlinearity=ACT),
    CellDef("leaky", f"{_MODULES}:LeakyCell", LeakyParams, count=_leaky_count,
            doc="`(1 - a) h + a act(D)`, `a = dt / tau`", nonlinearity=ACT),
    CellDef("gru", f"{_MODULES}:GRUCell", GRUParams, count=_gated_count(3, 3),
            doc="the ConvGRU equations", nonlinearity="sigmoid, tanh"),
    CellDef("lstm", f"{_MODULES}:LSTMCell", LSTMParams, count=_gated_count(4, 5),
            doc="the ConvLSTM equations (with a cell memory)", nonlinearity="sigmoid, tanh"),
    CellDef("rgc", f"{_MODULES}:RGCCell", RGCParams, count=_rgc_count,
            doc="the reciprocal gated cell (with a memory)",
            nonlinearity="sigmoid, elu", inputs=("out_gate",)),
)
for _cell in BUILT_IN:
    _CELLS.add(_cell.name, _cell)


def cells_table() -> str:
    """The table of the built-in cells in docs/spec.md ('areas'), made from the registry (a test keeps the
    docs current): each cell's parameters with their defaults, its named inputs, and what it computes."""
    rows = ["| cell | parameters | new value |", "| --- | --- | --- |"]
    for cell in BUILT_IN:
        params = [param_text(name, field) for name, field in cell.params.model_fields.items()]
        inputs = f"; the input{'s' * (len(cell.inputs) > 1)} {', '.join(f'`{i}`' for i in cell.inputs)}"
        rows.append(f"| `{cell.name}` | {', '.join(params)}{inputs if cell.inputs else ''} | {cell.doc} |")
    return "\n".join(rows)
