"""Plan -> nn.Module: `CortexNet`, the module that runs a Plan (`construct` makes one, `build` compiles one).

Parameter names come from spec names and step numbers only:
`prenet.0.conv.weight`, `edges.V1->V2.conv1.weight` (weights shared across
time), `edges.S1->S1.t3.conv1.weight` (weights of step 3), `...bn1.t3.weight`
(the norm of step 3, where one set of weights runs at several steps),
`head.fc.weight`. Reordering or renaming one area never moves another's weights.
The modules come from `parts.py`; `program.py` binds a Plan to them and holds the update body.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .describe import model_text
from .ops.layers import init_weights
from .ops.norms import frozen_statistics
from .parts import Head, cell_module, make_head, prenet_layers, tie, weight_set_module  # noqa: F401 (Head: API)
from .plan import Keep, Plan, Spec, WeightSet
from .program import Around, Program, Site, bind, call_part, make_values, run_update  # noqa: F401 (Site: API)


class InputError(ValueError):
    """An input tensor that does not match what the spec expects."""


class EarlyExit(NamedTuple):
    """What `model(x, exit_threshold=p)` returns: each sample's logits at its exit step, and that step."""

    logits: Tensor  # (batch, classes)
    steps: Tensor  # (batch,) the step at which each sample exited


class CortexNet(nn.Module):
    """A compiled spec. `model(x)` gives the readout's logits; see `forward` for the other readouts."""

    def __init__(self, plan: Plan):
        super().__init__()
        spec = plan.spec
        self.spec: Spec = spec
        self.plan: Plan = plan
        self.prenet = nn.Sequential(*prenet_layers(plan))
        self.edges = nn.ModuleDict()
        for wset in plan.weight_sets.values():
            self._add_weight_set(plan, wset)
        for wset in plan.weight_sets.values():
            if wset.tie:
                tie(self._module_of(wset), self.weight_set(wset.tie))
        self.cells = nn.ModuleDict({area: cell_module(plan, cell) for area, cell in plan.cell_sets.items()})
        self.head = make_head(plan)
        self._programs: dict[tuple, tuple[Program, Plan]] = {}  # by call form: (steps, prune[, targets])
        _LIVE[id(self)] = self
        # Recompute each step's intermediate values in the backward pass instead of keeping them.
        self.checkpoint: bool = spec.checkpoint
        # Bind the default program now: torch.compile then finds it ready instead of tracing its making
        # (and recompiling once the cache has changed).
        self._program(None, "final")
        if torch.get_default_device().type != "meta":  # on the meta device there are no values to set
            init_weights(self, spec.defaults.zero_init_residual)

    def __setstate__(self, state: dict[str, Any]) -> None:  # a copy (copy.deepcopy, pickle) is alive too
        super().__setstate__(state)
        _LIVE[id(self)] = self

    # --- construction ---------------------------------------------------------------------------

    def _add_weight_set(self, plan: Plan, wset: WeightSet) -> None:
        module = weight_set_module(plan, wset.edge, wset.steps or (0,))
        if wset.key is None:
            self.edges[wset.edge] = module
        else:
            if wset.edge not in self.edges:
                self.edges[wset.edge] = nn.ModuleDict()
            self.edges[wset.edge][wset.key] = module

    def weight_set(self, path: str) -> nn.Module:
        """The module of a weight set, by its path in the Plan (`edges.S1->S1.t1`)."""
        return self._module_of(self.plan.weight_sets[path])

    def _module_of(self, wset: WeightSet) -> nn.Module:
        return self.edges[wset.edge] if wset.key is None else self.edges[wset.edge][wset.key]

    # --- running ----------------------------------------------------------------------------------

    def plan_for(self, steps: int | None = None, readout: str | None = None, states: bool = False) -> Plan:
        """The Plan a call `model(x, steps=..., readout=..., return_states=...)` runs."""
        return self._program(steps, self._prune(readout, states))[1]

    @staticmethod
    def _prune(readout: str | None, states: bool) -> Keep:
        if readout not in (None, "all", "steps"):
            raise ValueError(f"readout is None (the spec's readout), 'steps' (each of its steps) or 'all' (every "
                             f"step); got {readout!r}")
        return "none" if states else ("anytime" if readout == "all" else "final")

    def _key(self, steps: int | None, prune: Keep) -> tuple[int | None, Keep]:
        if steps == self.spec.steps and self.spec.readout.step is None:
            steps = None  # the same run as the spec's own
        return steps, prune

    def _program(self, steps: int | None, prune: Keep) -> tuple[Program, Plan]:
        key = self._key(steps, prune)
        if key not in self._programs:
            plan = (self.plan if key == (None, "final") else
                    self.plan.variant(steps, prune))
            self._programs[key] = (bind(plan, self._module_of, self.cells), plan)
        return self._programs[key]
    def forward(self, x: Tensor, steps: int | None = None, readout: str | None = None,
                return_states: bool = False, around: Around | None = None,
                exit_threshold: float | None = None, mask: Tensor | None = None) -> Any:
        """Run the network on images `x` of shape (batch, channels, height, width), or on sequences
        (batch, frames, channels, height, width) where the spec's `input.stimulus` has frames; `mask` is the
        image shown after it where the stimulus says `then: mask`.

        - `model(x)`: the logits at the readout step (where the spec lists
          several steps, one prediction of theirs: `readout.decoder`).
        - `readout="steps"`: a dict {step: logits} for each of the spec's
          readout steps (what a loss over steps weighs, `readout.loss`).
        - `steps=T`: run T steps and read out at step T (past the spec's steps,
          per-step weights and norms follow `defaults.beyond`).
        - `readout="all"`: a dict {step: logits} for every step from the first
          at which signal reaches the readout area, in one pass.
        - `return_states=True`: also a dict {(area, step): tensor} of every
          area at every step from its first arrival (nothing is pruned).
        - `around(site, run, value)`: a hook around the pre-net, every edge
          call and every head reading (see `Site`); it returns what `run(value)`
          would. With a hook each call runs on its own (no recomputation).
        - `exit_threshold=p` (inference): each sample stops at the first step
          whose softmax confidence reaches p; an `EarlyExit` of each sample's
          logits and exit step (see `early_exit`).
        """
        if exit_threshold is not None:
            if readout is not None or return_states or around is not None:
                raise ValueError("exit_threshold gives each sample's logits at its exit step; it does not go "
                                 "with readout, return_states or around")
            return self.early_exit(x, exit_threshold, steps, mask)
        prune = self._prune(readout, return_states)
        key = self._key(steps, prune)
        if key != (None, "final"):  # bound at construction; other call forms are made on first use, for real
            _prepare(id(self), steps, prune)  # (outside the graph torch.compile traces)
        program, _ = self._programs[key]
        self._check_input(x, mask)
        values = self._run(program, x, around, mask)
        logits: dict[int, Tensor] = {}
        by_value: dict[tuple[tuple[int, ...], int], Tensor] = {}  # the head runs once per value and norm
        for step, slots, norm_step in program.readout:
            if readout == "all" or step in program.final:
                if (slots, norm_step) not in by_value:
                    by_value[(slots, norm_step)] = self._read_out(values, slots, norm_step, step, around)
                logits[step] = by_value[(slots, norm_step)]
        if readout in ("all", "steps"):
            result: Any = logits
        else:
            result = self.head.decode(list(logits.values()))
        if return_states:
            return result, {key: values[slot] for key, slot in program.states.items()}
        return result

    def _read_out(self, values: list, slots: tuple[int, ...], norm_step: int, step: int,
                  around: Around | None = None) -> Tensor:
        """The head's logits of the readout areas' values (in `slots`), with the norm of `norm_step`: the one
        head reading every run goes through (with a hook, through `around`)."""
        read = values[slots[0]] if len(slots) == 1 else tuple(values[s] for s in slots)
        if around is None:
            return self.head(read, norm_step)
        return around(Site("head", step, self.spec.readout.label), partial(call_part, self.head, norm_step), read)

    # --- features --------------------------------------------------------------------------------------

    def features(self, x: Tensor, at: Iterable[tuple[str, int]],
                 mask: Tensor | None = None) -> dict[tuple[str, int], Tensor]:
        """The value of each (area, step) in `at`, in one pass of a Plan pruned to them: nothing else is
        computed (not the readout). Equal to `model(x, return_states=True)`'s, which computes everything.
        `cortexgraph.features` takes names (`V4.t3`, `IT.all`) and pools."""
        program, _ = self._features_program(at)
        self._check_input(x, mask)
        values = self._run(program, x, None, mask)
        return {target: values[slot] for target, slot in program.states.items()}

    def features_plan(self, at: Iterable[tuple[str, int]]) -> Plan:
        """The Plan `features(x, at)` runs; made (and `at` checked) without running anything."""
        return self._features_program(at)[1]

    def _features_program(self, at: Iterable[tuple[str, int]]) -> tuple[Program, Plan]:
        targets = frozenset(at)
        if not targets:
            raise ValueError("ask for at least one (area, step) value")
        key = (max(t for _, t in targets), "features", targets)
        if key not in self._programs:
            plan = self.plan.variant(key[0], "features", targets)
            self._programs[key] = (bind(plan, self._module_of, self.cells), plan)
        return self._programs[key]

    # --- early exit ------------------------------------------------------------------------------------

    def early_exit(self, x: Tensor, threshold: float, steps: int | None = None,
                   mask: Tensor | None = None) -> EarlyExit:
        """Each sample's logits at the first step at which its softmax confidence (the largest probability)
        reaches `threshold`, and that step; samples that never do exit at the last step (`steps`, by default
        the spec's last readout step). The candidate steps are those of `readout="all"`: every step from the
        first at which signal reaches the readout area. Once samples exit the rest run on without them (every
        value is cut to the samples still running), and nothing is computed once all have: a batch costs
        what its slowest sample needs. Inference only: in training, batch norms would see a shrinking batch."""
        if not 0 < threshold <= 1:
            raise ValueError(f"exit_threshold is a probability in (0, 1]; got {threshold}")
        if self.training:
            raise ValueError("early exit is for inference: call model.eval() first (in training, batch "
                             "statistics would change as samples exit)")
        last = steps if steps is not None else max(self.spec.readout_steps)
        key = self._key(last, "anytime")
        _prepare(id(self), last, "anytime")
        program, _ = self._programs[key]
        self._check_input(x, mask)
        readout_at = {step: (slots, norm_step) for step, slots, norm_step in program.readout}
        running = torch.arange(x.shape[0], device=x.device)  # the samples not yet exited
        logits = torch.empty(0)
        exits = torch.full((x.shape[0],), last, dtype=torch.long, device=x.device)

        def exit_some(t: int, values: list[Tensor | None], shown: _Shown) -> bool:
            """After step t: the samples confident enough exit; the rest run on without them."""
            nonlocal running, logits
            if t not in readout_at:
                return False
            slots, norm_step = readout_at[t]
            now = self._read_out(values, slots, norm_step, t)
            if not logits.numel():
                logits = now.new_empty((x.shape[0], now.shape[1]))
            done = now.softmax(1).amax(1) >= threshold if t < last else torch.ones_like(running, dtype=torch.bool)
            logits[running[done]] = now[done]
            exits[running[done]] = t
            if bool(done.all()):
                return True
            if bool(done.any()):
                keep = ~done
                running = running[keep]
                values[:] = [v[keep] if v is not None else None for v in values]
                shown.keep(keep)
            return False

        self._run(program, x, None, mask, after_step=exit_some)
        return EarlyExit(logits, exits)

    # --- training objective (readout.loss) --------------------------------------------------------

    @property
    def loss_readout(self) -> str | None:
        """The `readout` a training step calls the model with: "steps" where the loss weighs each readout
        step's own loss, else None (the prediction)."""
        return None if self.spec.loss_weights is None else "steps"

    def loss(self, output: Tensor | dict[int, Tensor], target: Tensor,
             criterion: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> Tensor:
        """The training loss of `model(x, readout=model.loss_readout)`: the criterion on the prediction, or
        the weighted mean (`sum`: the sum) of its values at the readout steps, as `readout.loss` says (float32
        under autocast). A loss over steps given one tensor of logits is refused: it is not that loss."""
        weights = self.spec.loss_weights
        if weights is None:
            return criterion(_at_least_float32(output), target)
        if not isinstance(output, dict):
            raise ValueError(f"{self.spec.name}'s readout.loss weighs the loss of each readout step: give model.loss "
                             'the output of model(x, readout="steps") (model.loss_readout), not the final logits')
        return torch.stack([w * criterion(_at_least_float32(output[t]), target)
                            for t, w in zip(self.spec.readout_steps, weights) if w]).sum()

    @property
    def costs_activity(self) -> bool:
        """Whether training adds `readout.activity`'s cost, and so calls the model with return_states=True."""
        return self.spec.readout.activity is not None

    def activity(self, states: dict[tuple[str, int], Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """`readout.activity`'s cost of the states `model(x, return_states=True)` gave: its weight times the
        mean, over its areas' values at every step they hold one, of each value's mean absolute value (l1) or
        mean square (l2); and each area's mean of those (detached, for the metrics)."""
        setting = self.spec.readout.activity
        areas = setting.areas or list(self.spec.areas)
        terms: dict[str, list[Tensor]] = {area: [] for area in areas}
        for (area, _), value in states.items():
            if area in terms:
                value = _at_least_float32(value)
                terms[area].append(value.abs().mean() if setting.norm == "l1" else value.square().mean())
        every = [t for values in terms.values() for t in values]
        cost = setting.weight * torch.stack(every).mean() if every else next(iter(states.values())).new_zeros(())
        return cost, {area: torch.stack(values).mean().detach() for area, values in terms.items() if values}

    def prediction(self, output: Tensor | dict[int, Tensor]) -> Tensor:
        """The logits `model(x)` gives, from what `model(x, readout=model.loss_readout)` gave."""
        return self.head.decode(list(output.values())) if isinstance(output, dict) else output

    def _run(self, program: Program, x: Tensor, around: Around | None, mask: Tensor | None = None,
             after_step: Callable[[int, list, _Shown], bool] | None = None) -> list[Tensor | None]:
        """The interpreter: the values of one bound Plan on images `x`, slot by slot (freed after last use).
        Slot 0 holds what enters at the current step: the pre-net's output of the frame shown then.
        `after_step(t, values, shown)` runs after each step and may change the values (early exit cuts the
        batch); it returns True to stop."""
        values: list[Tensor | None] = [None] * program.slots
        shown = _Shown(self, x, mask, around)
        values[0] = shown.at(program.first_entry)  # (at steps nothing enters, its shape serves drives of zeros)
        for slot, shape in program.zeros:
            values[slot] = values[0].new_zeros((values[0].shape[0], *shape))
        recompute = self.checkpoint and self.training and torch.is_grad_enabled() and around is None
        for t, step in enumerate(program.steps):
            if step.enters:
                values[0] = shown.at(t)
            for slot in step.keeps:
                values[slot] = shown.at(t)
            if around is not None:  # each call and cell through the hook
                for (dst, calls, cell), update in zip(step.updates, step.plan):
                    values[dst] = run_update(calls, cell, values, around, update)
            elif recompute and step.updates:
                # Compiled, the recomputation is AOTAutograd's, of a functional graph whose statistics are
                # updated once, in the forward graph; eagerly, the norms must be told not to count twice.
                contexts = {} if torch.compiler.is_compiling() else {
                    "context_fn": partial(_recompute_contexts, step.norms)}
                made = checkpoint(make_values, step, *(values[s] for s in step.reads), use_reentrant=False,
                                  **contexts)
                for slot, value in zip(step.made, made):
                    values[slot] = value
            else:
                for dst, calls, cell in step.updates:
                    values[dst] = run_update(calls, cell, values)
            for slot in step.frees:
                values[slot] = None
            if after_step is not None and after_step(t, values, shown):
                break
        return values

    def _check_input(self, x: Any, mask: Any = None) -> None:
        spec = self.spec
        expected = self.plan.input_shape
        stimulus = spec.input.stimulus
        sequence = stimulus is not None and stimulus.frames is not None
        want = f"(batch, {'frames, ' if sequence else ''}{expected[0]}, {expected[1]}, {expected[2]})"
        if not isinstance(x, Tensor):
            raise InputError(f"{spec.name} expects a tensor of shape {want}; got {type(x).__name__}")
        if x.dim() != 4 + sequence or tuple(x.shape[1 + sequence:]) != expected or (sequence and not x.shape[1]):
            raise InputError(f"{spec.name} expects input of shape {want} (input: channels {expected[0]}, "
                             f"size {expected[1]}x{expected[2]}" + (", a sequence of frames" if sequence else "")
                             + f"); got {tuple(x.shape)}")
        masked = stimulus is not None and stimulus.show is not None and stimulus.then == "mask"
        if masked != (mask is not None):
            raise InputError(f"{spec.name} shows a mask after its image: call model(x, mask=m)" if masked else
                             f"{spec.name} shows no mask (input.stimulus has no then: mask); drop mask=")
        if mask is not None and (not isinstance(mask, Tensor) or tuple(mask.shape[-3:]) != expected
                                 or mask.dim() not in (3, 4) or (mask.dim() == 4 and mask.shape[0] != x.shape[0])):
            raise InputError(f"{spec.name} expects a mask of shape ({expected[0]}, {expected[1]}, {expected[2]}) "
                             f"or (batch, {expected[0]}, {expected[1]}, {expected[2]}); got "
                             f"{tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}")
        param = next(self.parameters(), None)
        if param is not None and (x.dtype != param.dtype or x.device != param.device):
            raise InputError(f"{spec.name} expects {param.dtype} input on {param.device} (where its weights are);"
                             f" got {x.dtype} on {x.device}")
        if mask is not None and (mask.dtype != x.dtype or mask.device != x.device):
            raise InputError(f"{spec.name} expects a mask of the input's kind ({x.dtype} on {x.device}); got "
                             f"{mask.dtype} on {mask.device}")

    def __repr__(self) -> str:
        """A page, not nn.Module's tree of every per-step norm (232 lines for a 5-area spec): each edge
        with its op, weights, steps and parameters. `nn.Module.__repr__(model)` prints the tree."""
        return f"CortexNet({model_text(self.plan)}\n)"


class _Shown:
    """What enters at each step (`input.stimulus`): the pre-net's output of the frame shown then, computed
    once per distinct frame (an image, a sequence's frames, a blank, a mask)."""

    def __init__(self, model: CortexNet, x: Tensor, mask: Tensor | None, around: Around | None):
        self.model, self.x, self.around = model, x, around
        self.stimulus, self.shown = model.plan.family.stimulus, model.plan.shown  # looked up once, not per step
        self.frames = x.shape[1] if x.dim() == 5 else 1  # a sequence's length (one image: 1)
        self.mask = mask.expand_as(x) if mask is not None else None
        self.made: dict[int | str, Tensor] = {}

    def at(self, step: int) -> Tensor:
        frame = self.shown(step, self.frames)
        if frame not in self.made:
            if frame == "mask":
                image = self.mask
            elif frame == "blank":
                image = self.x.new_full(self.x.shape, self.stimulus.blank)
            else:
                image = self.x[:, frame] if self.x.dim() == 5 else self.x  # a sequence's frame, or the image
            prenet = self.model.prenet
            self.made[frame] = (prenet(image) if self.around is None else
                                self.around(Site("prenet", step), prenet, image))
        return self.made[frame]

    def keep(self, rows: Tensor) -> None:
        """Only these samples run on (early exit)."""
        self.x = self.x[rows]
        self.mask = self.mask[rows] if self.mask is not None else None
        self.made = {frame: value[rows] for frame, value in self.made.items()}


def _prepare(model_id: int, steps: int | None, prune: Keep) -> bool:
    """Make (once) the program of a call form, so that `forward` finds it in `model._programs`.

    Making a Plan is plain Python that Dynamo cannot and should not trace (it pauses the cycle
    collector, among other things). Marked as having a constant result, this function runs for real
    while `torch.compile` traces `forward`, before `forward` first reads `_programs`, so every call
    form (`steps=T`, `readout="all"`, `return_states`) compiles with fullgraph=True on a fresh model.
    Its arguments are constants (Dynamo hands it their values; torch 2.11 cannot hand it a module):
    the model comes by its id from the models alive."""
    _LIVE[model_id]._program(steps, prune)
    return True


_LIVE: weakref.WeakValueDictionary[int, CortexNet] = weakref.WeakValueDictionary()  # id -> every CortexNet


# What torch.compiler.assume_constant_result sets, without importing Dynamo (2 s) for every build;
# tests/test_model.py checks that the two agree.
_prepare._dynamo_marked_constant = True  # type: ignore[attr-defined]


def _at_least_float32(t: Tensor) -> Tensor:
    """Logits made under autocast (float16, bfloat16) in float32 for the loss; others as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _recompute_contexts(norms: tuple[nn.Module, ...]) -> tuple[Any, Any]:
    return nullcontext(), frozen_statistics(norms)
