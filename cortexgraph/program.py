"""A Plan bound to a model's modules, and the one update body that runs it.

`bind` turns a Plan's names into value slots (each freed after its last use); `run_update` computes one
area's new value from its calls and its cell. `CortexNet._run` walks a `Program` step by step; a hook
(`around`) and activation checkpointing wrap `run_update`, they do not copy it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from .ops.norms import batch_norms_at
from .ops.op_params import Shape
from .plan import INPUT, ZEROS, Call, Plan, Update, WeightSet

Calls = tuple[tuple[nn.Module, int, int], ...]  # (module, slot read, norm step) summed into one value
DRIVES, MODULATES = "", "*"  # what a call's output adds into: the drive, or its gain (else a cell's named input)


class BoundCell(NamedTuple):
    """What an update does besides summing its calls: modulation, and a cell other than `sum`."""

    cell: nn.Module | None  # None: the `sum` cell (the update only has modulating calls)
    roles: tuple[str, ...]  # per call: DRIVES, MODULATES (the drive's gain), or the cell input it adds into
    gain: Callable[[Tensor], Tensor]  # g in the drive's gain 1 + g(M)
    prev: int  # slot of the value the cell reads as its state; -1: none (zeros)
    memory_in: int  # slot of the memory it returned last time; -1: none
    memory_out: int  # slot for the memory it returns; -1: it keeps none
    step: int  # the step whose norm it uses
    shape: tuple[int, int, int]  # the area's, for a drive of zeros where nothing fires


class Site(NamedTuple):
    """Where the runner is, as a hook (`around`) sees it: the pre-net on a frame (the step at which the frame
    is first shown: once per distinct frame), one edge call of the Plan (its step, the area it updates and
    the `Call`), an area's cell on its drive (its step and area), or the head reading the readout area out at
    a step."""

    what: Literal["prenet", "call", "cell", "head"]
    step: int | None = None
    area: str | None = None
    call: Call | None = None


# A hook around each part the runner runs: `around(site, run, value)` returns what `run(value)` returns,
# or anything in its place (the non-finite diagnosis checks it, FLOP counting counts it).
Around = Callable[[Site, Callable[[Tensor], Tensor], Tensor], Tensor]


@dataclass(frozen=True)
class BoundStep:
    """One step of a bound Plan: the values it makes from values made before it."""

    updates: tuple[tuple[int, Calls, BoundCell | None], ...]  # (slot written, its calls, its cell where not `sum`)
    reads: tuple[int, ...]  # slots its calls and cells read that earlier steps made
    frees: tuple[int, ...]  # slots nobody reads after this step
    made: tuple[int, ...]  # slots it writes: values, and memories cells keep
    norms: tuple[nn.Module, ...]  # the batch norms it runs (frozen while a checkpoint recomputes the step)
    plan: tuple[Update, ...]  # the Plan's updates these are bound from, for hooks
    enters: bool  # an input edge fires: slot 0 must hold what is shown at this step
    keeps: tuple[int, ...]  # slots that keep what is shown at this step, for delayed input edges to read later


@dataclass(frozen=True)
class Program:
    """A Plan bound to this module's submodules, ready to run: value slots instead of names."""

    slots: int
    steps: tuple[BoundStep, ...]
    # (step, slots of the readout areas, head norm step), at each step where every readout area has a value
    readout: tuple[tuple[int, tuple[int, ...], int], ...]
    final: tuple[int, ...]  # the steps `model(x)` reads out at
    states: dict[tuple[str, int], int]  # (area, step) -> slot, for return_states
    zeros: tuple[tuple[int, Shape], ...]  # (slot, shape): the zeros silent sources hold (silence: computed)

    @property
    def first_entry(self) -> int:
        """The first step at which an input edge fires (0 where none does)."""
        return next((t for t, step in enumerate(self.steps) if step.enters), 0)


def bind(plan: Plan, module_of: Callable[[WeightSet], nn.Module], cells: Mapping[str, nn.Module]) -> Program:
    """`plan` bound to a model's modules (`module_of` a weight set's, `cells` by area): value slots instead of
    names, each freed after its last use, ready for `CortexNet._run`."""
    keep = plan.prune == "none"
    reads_out = set(plan.reads_out)
    slot_of: dict[tuple[str, int], int] = {}
    kept_frames: dict[int, int] = {}  # step -> the slot that keeps what entered then, for delayed input edges
    zeros_of: dict[str, int] = {}  # area -> the slot of the zeros it holds while silent (silence: computed)
    memory_of: dict[tuple[str, int], int] = {}  # (area, step) -> slot of the memory its cell returned
    slots = 1
    latest: dict[str, int] = {}
    steps: list[tuple[tuple[int, Calls, BoundCell | None], ...]] = []
    readout, last_use = [], {}
    states: dict[tuple[str, int], int] = {}
    for step, updates in enumerate(plan.schedule):
        bound = []
        for update in updates:
            calls = []
            for call in update.calls:
                if call.reads == ZEROS:
                    if call.source not in zeros_of:
                        zeros_of[call.source], slots = slots, slots + 1
                    src = zeros_of[call.source]
                elif call.source != INPUT:
                    src = slot_of[(call.source, call.reads)]
                elif call.reads == step:
                    src = 0  # what enters now
                else:
                    if call.reads not in kept_frames:
                        kept_frames[call.reads], slots = slots, slots + 1
                    src = kept_frames[call.reads]
                last_use[src] = step
                calls.append((module_of(call.weights), src, call.norm_step))
            cell = None
            if update.cell is not None or not all(c.edge.drives for c in update.calls):
                cell, slots = _bind_cell(plan, update, cells, slot_of, memory_of, slots)
                for read in (cell.prev, cell.memory_in):
                    if read >= 0:
                        last_use[read] = step
            slot_of[(update.area, step)] = latest[update.area] = slots
            bound.append((slots, tuple(calls), cell))
            slots += 1
        steps.append(tuple(bound))
        if step in reads_out:
            readout.append((step, tuple(latest[a] for a in plan.readout_areas), plan.head_norm_step(step)))
        if keep:
            states.update({(area, step): slot for area, slot in latest.items()})
        states.update({(area, t): latest[area] for area, t in plan.targets if t == step})
    frees: dict[int, list[int]] = {}
    if not keep:
        kept = {slot for _, read, _ in readout for slot in read} | {0} | set(states.values())
        for slot, step in last_use.items():
            if slot not in kept:
                frees.setdefault(step, []).append(slot)
    program = []
    for step, updates in enumerate(steps):
        runs = [(m, norm_step) for _, calls, _ in updates for m, _, norm_step in calls]
        runs += [(c.cell, c.step) for _, _, c in updates if c is not None and c.cell is not None]
        norms = tuple({id(n): n for m, t in runs for n in batch_norms_at(m, t)}.values())
        made = tuple(dst for dst, _, _ in updates) + tuple(
            c.memory_out for _, _, c in updates if c is not None and c.memory_out >= 0)
        read = {src for _, calls, _ in updates for _, src, _ in calls}
        read |= {r for _, _, c in updates if c is not None for r in (c.prev, c.memory_in) if r >= 0}
        if any(c is not None and c.cell is not None for _, _, c in updates):
            read.add(0)  # a drive of zeros takes the batch size, device and type of the pre-net's output
        reads = tuple(sorted(read - set(made)))  # zero-delay edges read values made earlier in the step
        enters = any(src == 0 for _, calls, _ in updates for _, src, _ in calls)
        keeps = tuple(slot for shown, slot in kept_frames.items() if shown == step)
        program.append(BoundStep(updates, reads, tuple(frees.get(step, ())), made, norms, plan.schedule[step],
                                 enters, keeps))
    zeros = tuple((slot, plan.shapes[area]) for area, slot in zeros_of.items())
    return Program(slots, tuple(program), tuple(readout), plan.readout_steps, states, zeros)


def _bind_cell(plan: Plan, update: Update, cells: Mapping[str, nn.Module], slot_of: dict, memory_of: dict,
               slots: int) -> tuple[BoundCell, int]:
    """An update's modulation and cell, bound to slots; memory slots are taken from `slots` on."""
    prev = memory_in = memory_out = -1
    if update.prev is not None:
        prev = slot_of[(update.area, update.prev)]
        memory_in = memory_of.get((update.area, update.prev), -1)
    if update.cell is not None and plan.area_cells[update.area].reads_state:
        memory_out = memory_of[(update.area, update.step)] = slots
        slots += 1
    gain = torch.tanh if plan.area_cells[update.area].modulation == "tanh" else _identity
    module = cells[update.area] if update.cell is not None else None
    roles = tuple(MODULATES if c.edge.modulating else c.edge.into or DRIVES for c in update.calls)
    return BoundCell(module, roles, gain, prev, memory_in, memory_out, update.cell_step,
                     plan.shapes[update.area]), slots


def call_part(module: nn.Module, step: int, x: Tensor) -> Tensor:
    return module(x, step)


def run_update(calls: Calls, cell: BoundCell | None, values: Any, around: Around | None = None,
               update: Update | None = None) -> Tensor:
    """One area's new value: the one update body every run goes through. Its calls are summed by what they
    add into (the drive, its gain, or a named input of its cell); `D = drive * (1 + g(gain))`; then the cell
    (where the area has one other than `sum`) on D (zeros where nothing drives), the area's previous value
    and memory, and its named inputs. With a hook, each call and the cell run through `around`."""
    if cell is None and around is None:  # a `sum` area, every call driving: the common case, kept lean
        total = None
        for module, src, norm_step in calls:
            out = module(values[src], norm_step)
            total = out if total is None else total + out
        return total
    sums: dict[str, Tensor] = {}  # DRIVES, MODULATES, and each named input of the cell
    for i, (module, src, norm_step) in enumerate(calls):
        if around is None:
            out = module(values[src], norm_step)
        else:
            site = Site("call", update.step, update.area, update.calls[i])
            out = around(site, partial(call_part, module, norm_step), values[src])
        role = DRIVES if cell is None else cell.roles[i]
        sums[role] = out if role not in sums else sums[role] + out
    drive, gain = sums.pop(DRIVES, None), sums.pop(MODULATES, None)
    if cell is None:
        return drive
    if gain is not None and drive is not None:
        drive = drive * (1 + cell.gain(gain))
    if cell.cell is None:
        return drive
    if drive is None:
        drive = values[0].new_zeros((values[0].shape[0], *cell.shape))
    h = values[cell.prev] if cell.prev >= 0 else None
    memory = values[cell.memory_in] if cell.memory_in >= 0 else None
    run = partial(_cell_value, cell, h, memory, values, sums)
    return run(drive) if around is None else around(Site("cell", update.step, update.area), run, drive)


def _cell_value(cell: BoundCell, h: Tensor | None, memory: Any, values: Any, inputs: dict[str, Tensor],
                drive: Tensor) -> Tensor:
    value, memory = cell.cell(drive, h, memory, cell.step, **inputs)
    if cell.memory_out >= 0:
        values[cell.memory_out] = memory
    return value


def _identity(x: Tensor) -> Tensor:
    return x


def make_values(step: BoundStep, *inputs: Tensor) -> tuple[Tensor, ...]:
    """A step's new values (and cells' memories) from the values it reads: the unit that activation
    checkpointing recomputes."""
    values = dict(zip(step.reads, inputs))
    for dst, calls, cell in step.updates:
        values[dst] = run_update(calls, cell, values)
    return tuple(values[slot] for slot in step.made)
