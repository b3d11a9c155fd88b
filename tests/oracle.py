"""An unroller written from the spec document alone: the oracle compiled models are checked against.

It reads a spec as a plain dict, in the edge-list notation, the way docs/spec.md
and docs/semantics.md describe it, and shares no code with cortexgraph: its own
reading of step rules, its own arrival steps, its own weights (named as
docs/semantics.md names them, so a model loads them with `strict=True`) and
plain `torch.nn.functional` ops.

It is deliberately naive. A run first works out, step by step, which area gets
a value from which edges (a contribution from a silent source is nothing), then
which of those values what was asked for depends on, and computes exactly
those, in step order. That is what pruning promises, so a model must agree with
it on outputs, gradients and the running statistics of its norms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

INPUT = "input"
SILENT = -1  # the step a firing reads where its source is silent and silence: computed runs it on zeros
ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "silu": F.silu, "elu": F.elu,
               "none": lambda x: x}
PREACTIVATION = {"residual", "preact"}
WEIGHTLESS = {"identity", "pool"}


NORMLESS = ("identity", "pool", "maxpool", "avgpool")  # ops without norms


class Refused(Exception):
    """The spec's semantics say this run cannot happen (past the horizon under `beyond: error`, say)."""


def steps_of(rule: Any, last: int, first: int) -> list[int]:
    """The steps in [first, last] a written `at` rule selects (docs/spec.md, 'Steps')."""
    if rule in ("all", "every"):
        return list(range(first, last + 1))
    if rule == "once":
        return [0] if first == 0 else []
    if isinstance(rule, int):
        rule = [rule]
    if isinstance(rule, list):
        return [s for s in rule if first <= s <= last]
    start, stop = rule.get("from", first), min(rule.get("to", last), last)
    return [s for s in range(start, stop + 1, rule.get("every", 1)) if s >= first]


def _size(written: Any) -> tuple[int, int]:
    return (written, written) if isinstance(written, int) else tuple(written)


def _op(written: Any) -> tuple[str, dict]:
    if isinstance(written, str):
        return written, {}
    (name, params), = written.items()
    return name, dict(params or {})


@dataclass
class Edge:
    name: str
    source: str
    target: str
    op: str
    params: dict
    rule: Any
    delay: int
    share: Any
    norm: str
    tie: str | None
    first: int  # an input edge's delay, 0 for zero-delay edges, 1 for other edges
    modulating: bool = False  # scales the target's drive by 1 + g(M) instead of adding to it
    activation: str | None = None  # the op's nonlinearity where not the spec's


@dataclass
class Group:
    """One set of weights: where its tensors are named and the steps at which it computes."""

    prefix: str
    steps: list[int]
    weights: str = ""  # where its convs' weights are named (another edge's, where tied)


@dataclass
class Timeline:
    updates: list[dict[str, list[tuple[Edge, int]]]]  # [step][area] -> (edge, step of the source value read)
    versions: dict[str, list[int]] = field(default_factory=dict)  # area -> steps at which it got a value

    def version(self, area: str, step: int) -> int | None:
        held = [v for v in self.versions[area] if v <= step]
        return held[-1] if held else None


class Oracle:
    """A spec document, unrolled by hand. `run` answers what `model(x, ...)` should."""

    def __init__(self, doc: dict, seed: int = 0, dtype: torch.dtype = torch.float64):
        self.doc = doc
        self.steps = doc["steps"]
        defaults = doc.get("defaults", {})
        self.horizon = defaults.get("horizon") or self.steps
        self.beyond = defaults.get("beyond", "error")
        self.act = ACTIVATIONS[defaults.get("activation", "relu")]
        self.dtype = dtype
        self.generator = torch.Generator().manual_seed(seed)
        self.tensors: dict[str, Tensor] = {}
        self.shapes = {name: (a["channels"], *_size(a["size"])) for name, a in doc["areas"].items()}
        shape = (doc["input"]["channels"], *_size(doc["input"]["size"]))
        for i, layer in enumerate(doc.get("prenet", [])):
            shape = self._make_prenet_layer(i, layer, shape)
        self.shapes[INPUT] = shape
        # Each area's cell (docs/semantics.md, 'Cells'): its name and parameters, and g of its modulation.
        self.cells = {name: _op(a.get("cell", "sum")) for name, a in doc["areas"].items()}
        self.gain = {name: torch.tanh if a.get("modulation") == "tanh" else (lambda m: m)
                     for name, a in doc["areas"].items()}
        # silence: zeros and computed run cells from step 0; computed also runs edges on a silent source's zeros
        self.zeros = doc.get("silence", "absent") in ("zeros", "computed")
        self.computed = doc.get("silence", "absent") == "computed"
        self.ill_conditioned = False  # a batch norm in training has seen a constant map (see _bn)
        self.edges = self._read_edges(defaults)
        self.groups = self._make_groups()
        self.cell_steps = self._make_cells()
        readout = doc["readout"]
        self.readout_areas = readout["area"] if isinstance(readout["area"], list) else [readout["area"]]
        step = readout.get("step", self.steps)
        self.readout_steps = step if isinstance(step, list) else [step]
        self._make_head(readout["head"])

    # --- reading the document -------------------------------------------------------------------

    def _read_edges(self, defaults: dict) -> list[Edge]:
        edges = []
        for area, rule in self.doc["inputs"].items():
            rule = rule if isinstance(rule, dict) and {"at", "op"} & set(rule) else {"at": rule}
            name, params = _op(rule.get("op", "identity"))
            edges.append(Edge(f"{INPUT}->{area}", INPUT, area, name, params, rule.get("at", "once"), 0,
                              defaults.get("share", "time"), defaults.get("norm", "per_step"), None, 0))
        for e in self.doc.get("edges", []):
            name, params = _op(e["op"])
            # an input edge carries the frame shown `delay` steps earlier (default 0), from step `delay`
            delay = e.get("delay", 0 if e["from"] == INPUT else 1)
            edges.append(Edge(e.get("name", f"{e['from']}->{e['to']}"), e["from"], e["to"], name, params,
                              e.get("at", "all"), delay, e.get("share", defaults.get("share", "time")),
                              e.get("norm", defaults.get("norm", "per_step")), e.get("tie"),
                              delay if e["from"] == INPUT else 0 if delay == 0 or self.computed else 1,
                              e.get("modulating", False), e.get("activation")))
        return edges

    def fires(self, edge: Edge, last: int) -> list[int]:
        return steps_of(edge.rule, last, edge.first)

    def timeline(self, last: int) -> Timeline:
        """Which area gets a value at which step, from which edges reading which source values."""
        timeline = Timeline([], {area: [] for area in self.doc["areas"]} | {INPUT: [0]})
        now_before: set[str] = set()  # the areas known to update at the current step
        for t in range(last + 1):
            now: dict[str, list[tuple[Edge, int]]] = {}
            firing = [edge for edge in self.edges if t in self.fires(edge, last)]
            # Zero-delay edges read what their source holds at this step, which may itself depend on this
            # step's firings: sweep until nothing changes (the spec has no zero-delay cycle).
            changed = True
            while changed:
                changed, now = False, {}
                for edge in firing:
                    if edge.source == INPUT:
                        reads = t - edge.delay  # the step whose frame it carries
                    elif edge.delay == 0:
                        reads = t if edge.source in now_before else timeline.version(edge.source, t)
                    else:
                        reads = timeline.version(edge.source, t - edge.delay)
                    if reads is None and self.computed:
                        reads = SILENT  # the zeros a silent source holds, run through the edge
                    if reads is not None:  # a silent source contributes nothing
                        now.setdefault(edge.target, []).append((edge, reads))
                # A cell other than `sum` runs at every step from its arrival (from step 0 under zeros);
                # otherwise an area updates only where a driving (not modulating) edge fires.
                for area, (cell, _) in self.cells.items():
                    if cell != "sum" and (timeline.versions[area] or self.zeros):
                        now.setdefault(area, [])
                now = {a: f for a, f in now.items() if self._runs(a, timeline) or any(not e.modulating for e, _ in f)}
                if set(now) != now_before:
                    now_before, changed = set(now), True
            for area in now:
                timeline.versions[area].append(t)
            timeline.updates.append(now)
            now_before = set()
        return timeline

    def _runs(self, area: str, timeline: Timeline) -> bool:
        return self.cells[area][0] != "sum" and bool(timeline.versions[area] or self.zeros)

    def stateful(self, area: str) -> bool:
        """Whether the area's cell reads its own previous value."""
        return self.cells[area][0] in ("leaky", "gru", "lstm", "rgc")

    # --- weights --------------------------------------------------------------------------------

    def _random(self, *shape: int, low: float | None = None, high: float | None = None) -> Tensor:
        if low is not None:
            return low + (high - low) * torch.rand(shape, generator=self.generator, dtype=self.dtype)
        fan_in = max(1, int(torch.tensor(shape[1:]).prod()))
        return torch.randn(shape, generator=self.generator, dtype=self.dtype) / fan_in ** 0.5

    def _conv(self, name: str, cout: int, cin: int, k: int, bias: bool = False) -> None:
        self.tensors[f"{name}.weight"] = self._random(cout, cin, k, k)
        if bias:
            self.tensors[f"{name}.bias"] = self._random(cout, low=-0.1, high=0.1)

    def _batchnorm(self, name: str, channels: int) -> None:
        self.tensors[f"{name}.weight"] = self._random(channels, low=0.5, high=1.5)
        self.tensors[f"{name}.bias"] = self._random(channels, low=-0.2, high=0.2)
        self.tensors[f"{name}.running_mean"] = self._random(channels, low=-0.2, high=0.2)
        self.tensors[f"{name}.running_var"] = self._random(channels, low=0.5, high=1.5)
        self.tensors[f"{name}.num_batches_tracked"] = torch.tensor(3)

    def _norm(self, name: str, channels: int, policy: str, steps: list[int]) -> None:
        """A norm for weights that run at `steps`: one per step (named `.t<k>`) where they run at
        several under per_step, else one; none under `none`."""
        if policy == "per_step" and len(steps) > 1:
            for t in steps:
                self._batchnorm(f"{name}.t{t}", channels)
        elif policy != "none":
            self._batchnorm(name, channels)

    def _make_prenet_layer(self, i: int, layer: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
        name, p = _op(layer)
        assert name == "conv" and p.get("stride", 1) == 1, "the oracle knows the pre-net's 'same' conv only"
        self._conv(f"prenet.{i}.conv", p["out"], shape[0], p.get("kernel", 3), p.get("bias", False))
        self._batchnorm(f"prenet.{i}.norm", p["out"])
        return (p["out"], *shape[1:])

    def _make_groups(self) -> dict[str, list[Group]]:
        """Each edge's sets of weights: shared across time, one per step or one per step group,
        each with norms for the steps (up to the horizon) at which it computes."""
        timeline = self.timeline(max(self.horizon, self.steps))
        computes = {e.name: [] for e in self.edges}
        for t, now in enumerate(timeline.updates):
            for firings in now.values():
                for edge, _ in firings:
                    computes[edge.name].append(t)
        tied_to = {e.tie for e in self.edges if e.tie}
        groups = {}
        for edge in self.edges:
            # An edge that first computes past the horizon gets the weights of its first step.
            steps = [t for t in computes[edge.name] if t <= self.horizon] or computes[edge.name][:1]
            prefix = f"edges.{edge.name}"
            if edge.share == "time":
                groups[edge.name] = [Group(prefix, steps)] if steps or edge.name in tied_to else []
            elif edge.share == "none":
                groups[edge.name] = [Group(f"{prefix}.t{t}", [t]) for t in steps]
            else:
                runs = [([t for t in written if t in steps], written[0]) for written in edge.share]
                groups[edge.name] = [Group(f"{prefix}.t{first}", run) for run, first in runs if run]
        for edge in self.edges:
            for group in groups[edge.name]:
                group.weights = f"edges.{edge.tie}" if edge.tie else group.prefix
                self._make_op(edge, group, tied=edge.tie is not None)
        return groups

    def _make_cells(self) -> dict[str, list[int]]:
        """Each cell's weights (named `cells.<area>.*`), and the steps it runs at up to the horizon."""
        versions = self.timeline(max(self.horizon, self.steps)).versions
        steps = {}
        for area, (cell, p) in self.cells.items():
            if cell == "sum":
                continue
            c, k = self.shapes[area][0], p.get("kernel", 3)
            steps[area] = [t for t in versions[area] if t <= self.horizon] or versions[area][:1]
            prefix = f"cells.{area}"
            if cell in ("act", "conv"):
                if cell == "conv":
                    self._conv(f"{prefix}.conv", c, c, k, p.get("bias", False))
                self._norm(f"{prefix}.norm", c, p.get("norm", "per_step"), steps[area])
            elif cell == "leaky":
                if p.get("learn_tau"):
                    shape = (1, c, 1, 1) if p.get("per_channel") else ()
                    self.tensors[f"{prefix}.raw_tau"] = self._random(*shape, low=-1.0, high=1.0)
            elif cell == "gru":
                for gate in ("update", "reset", "candidate"):
                    self._conv(f"{prefix}.{gate}", c, 2 * c, k, p.get("bias", True))
            elif cell == "lstm":
                self._conv(f"{prefix}.gates", 4 * c, 2 * c, k, p.get("bias", True))
            else:
                assert cell == "rgc", f"the oracle does not know cell {cell!r}"
                for part in ("input_to_memory", "memory_tau", "memory_gate", "value_tau", "value_gate"):
                    self._conv(f"{prefix}.{part}", c, c, k, p.get("bias", True))
        return steps

    def _make_op(self, edge: Edge, group: Group, tied: bool) -> None:
        (cin, hin, _), (cout, hout, _) = self.shapes[edge.source], self.shapes[edge.target]
        p, steps, prefix = edge.params, group.steps, group.prefix
        conv = (lambda *a, **k: None) if tied else (lambda part, *a, **k: self._conv(f"{prefix}.{part}", *a, **k))

        def norm(part: str, channels: int) -> None:
            self._norm(f"{prefix}.{part}", channels, edge.norm, steps)

        if edge.op in ("conv", "down"):
            conv("conv", cout, cin, p.get("kernel", 3), p.get("bias", False))
            norm("norm", cout)
        elif edge.op == "up":
            if p.get("mode", "nearest") == "transpose":
                if not tied:  # a transposed conv's weight is (in, out, k, k)
                    self.tensors[f"{prefix}.conv.weight"] = self._random(cin, cout, hout // hin, hout // hin)
            else:
                conv("conv", cout, cin, p.get("kernel", 3))
            norm("norm", cout)
        elif edge.op in ("residual", "preact"):
            norm("bn1", cin)
            conv("conv1", cout, cin, 3)
            norm("bn2", cout)
            conv("conv2", cout, cout, 3)
            if self.shapes[edge.source] != self.shapes[edge.target]:
                conv("shortcut", cout, cin, 1)
        elif edge.op == "basic":
            conv("conv1", cout, cin, 3)
            norm("bn1", cout)
            conv("conv2", cout, cout, 3)
            norm("bn2", cout)
            if self.shapes[edge.source] != self.shapes[edge.target]:
                conv("shortcut", cout, cin, 1)
                norm("shortcut_norm", cout)
        else:
            assert edge.op in WEIGHTLESS, f"the oracle does not know op {edge.op!r}"

    def _make_head(self, head: dict) -> None:
        areas = self.readout_areas
        preactivated = any(e.op in PREACTIVATION for e in self.edges if e.target in areas)
        self.head_norm = head.get("norm") or ("per_step" if preactivated else "none")
        self.head_pool = head.get("pool", "avg")
        # Reading several areas: a norm each (head.norm.<area>), features concatenated in the listed order.
        self.head_norms = ["head.norm"] if len(areas) == 1 else [f"head.norm.{a}" for a in areas]
        features = 0
        for name, area in zip(self.head_norms, areas):
            channels, h, w = self.shapes[area]
            self._norm(name, channels, self.head_norm, self.readout_steps)
            features += channels if self.head_pool != "none" else channels * h * w
        self.tensors["head.fc.weight"] = self._random(head["classes"], features)
        self.tensors["head.fc.bias"] = self._random(head["classes"], low=-0.1, high=0.1)

    def state_dict(self) -> dict[str, Tensor]:
        return {name: t.detach().clone() for name, t in self.tensors.items()}

    def parameters(self) -> dict[str, Tensor]:
        """The tensors gradients flow to (made leaves that require them)."""
        out = {}
        for name, t in self.tensors.items():
            if t.is_floating_point() and not name.endswith(("running_mean", "running_var")):
                t.requires_grad_(True)
                out[name] = t
        return out

    # --- computing ------------------------------------------------------------------------------

    def _bn(self, name: str, x: Tensor, training: bool) -> Tensor:
        t = self.tensors
        if training:
            t[f"{name}.num_batches_tracked"] += 1
            # A constant map (a cell's drive of zeros under silence: zeros): its backward pass divides
            # rounding errors by sqrt(eps), so gradients that are 0 in exact arithmetic come out as noise.
            self.ill_conditioned |= bool((x.var((0, 2, 3)) < 1e-20).any())
        return F.batch_norm(x, t[f"{name}.running_mean"], t[f"{name}.running_var"], t[f"{name}.weight"],
                            t[f"{name}.bias"], training, 0.1, 1e-5)

    def _apply_norm(self, name: str, x: Tensor, policy: str, steps: list[int], step: int, training: bool) -> Tensor:
        if policy == "none":
            return x
        return self._bn(f"{name}.t{step}" if policy == "per_step" and len(steps) > 1 else name, x, training)

    def _group_at(self, edge: Edge, step: int) -> tuple[Group, int]:
        """The weights an edge computes with at `step`, and the step whose norm it uses."""
        for group in self.groups[edge.name]:
            if step in group.steps:
                return group, step
        if edge.share == "time" and (edge.norm != "per_step" or edge.op in NORMLESS) and self.groups[edge.name]:
            return self.groups[edge.name][0], step  # one set of weights and norms serves every step
        if step > self.horizon and self.beyond == "reuse_last" and self.groups[edge.name]:
            # (a tie target that computes only past the horizon has weights, but no steps)
            last = max(self.groups[edge.name], key=lambda g: g.steps[-1:] or [0])
            return last, last.steps[-1] if last.steps else step
        raise Refused(f"edge {edge.name} has no weights for step {step}")

    def _cell(self, area: str, step: int, d: Tensor, h: Tensor | None, c: Tensor | None,
              training: bool) -> tuple[Tensor, Tensor | None]:
        """The area's cell on drive d, previous value h and memory c (None: zeros)."""
        cell, p = self.cells[area]
        w, prefix = self.tensors, f"cells.{area}"
        act = ACTIVATIONS[p.get("act") or "relu"]  # defaults.activation is the edges'
        steps = self.cell_steps[area]
        norm_step = step  # past the horizon, as for edges: the last step's norm, or refused
        step_norms = cell in ("act", "conv") and p.get("norm", "per_step") == "per_step"
        if step not in steps and steps and step_norms:
            if step > self.horizon and self.beyond == "reuse_last":
                norm_step = steps[-1]
            else:
                raise Refused(f"the {cell} cell of {area} runs past the horizon at step {step}")

        def conv(part: str, x: Tensor) -> Tensor:
            return F.conv2d(x, w[f"{prefix}.{part}.weight"], w.get(f"{prefix}.{part}.bias"),
                            padding=p.get("kernel", 3) // 2)

        if cell in ("act", "conv"):
            x = conv("conv", d) if cell == "conv" else d
            return act(self._apply_norm(f"{prefix}.norm", x, p.get("norm", "per_step"), steps, norm_step,
                                        training)), None
        if cell == "leaky":
            dt = p.get("dt", 1.0)
            tau = dt + F.softplus(w[f"{prefix}.raw_tau"]) if p.get("learn_tau") else p.get("tau", 2.0)
            a = dt / tau
            return a * act(d) + ((1 - a) * h if h is not None else 0), None
        h = torch.zeros_like(d) if h is None else h
        c = torch.zeros_like(d) if c is None else c
        if cell == "gru":
            z = torch.sigmoid(conv("update", torch.cat([d, h], 1)))
            r = torch.sigmoid(conv("reset", torch.cat([d, h], 1)))
            n = torch.tanh(conv("candidate", torch.cat([d, r * h], 1)))
            return (1 - z) * n + z * h, None
        if cell == "lstm":
            i, f, g, o = conv("gates", torch.cat([d, h], 1)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        if cell != "rgc":
            raise NotImplementedError(f"the oracle does not know the {cell} cell")
        new_c = F.elu((1 - torch.sigmoid(conv("memory_tau", c))) * c
                      + (1 - torch.sigmoid(conv("memory_gate", h))) * conv("input_to_memory", d))
        return F.elu((1 - torch.sigmoid(conv("value_tau", h))) * h + (1 - torch.sigmoid(conv("value_gate", c))) * d), \
            new_c

    def _call(self, edge: Edge, step: int, x: Tensor, training: bool) -> Tensor:
        group, norm_step = self._group_at(edge, step)
        p = edge.params
        act = ACTIVATIONS[edge.activation] if edge.activation else self.act
        hin, hout = self.shapes[edge.source][1], self.shapes[edge.target][1]
        down = hin // hout if hin >= hout else 1
        w = self.tensors

        def norm(part: str, v: Tensor) -> Tensor:
            return self._apply_norm(f"{group.prefix}.{part}", v, edge.norm, group.steps, norm_step, training)

        def weight(part: str) -> Tensor:
            return w[f"{group.weights}.{part}.weight"]

        if edge.op == "identity":
            return x
        if edge.op == "pool":
            pool = F.max_pool2d if p.get("kind", "max") == "max" else F.avg_pool2d
            return pool(x, down, down)
        if edge.op in ("conv", "down"):
            k = p.get("kernel", 3)
            bias = w[f"{group.weights}.conv.bias"] if p.get("bias", False) else None
            return act(norm("norm", F.conv2d(x, weight("conv"), bias, down, k // 2)))
        if edge.op == "up":
            mode, factor = p.get("mode", "nearest"), hout // hin
            if mode == "transpose":
                out = F.conv_transpose2d(x, weight("conv"), stride=factor)
            else:
                resized = F.interpolate(x, scale_factor=factor, mode=mode,
                                        align_corners=False if mode == "bilinear" else None)
                out = F.conv2d(resized, weight("conv"), padding=p.get("kernel", 3) // 2)
            return act(norm("norm", out))
        reshapes = self.shapes[edge.source] != self.shapes[edge.target]
        if edge.op in PREACTIVATION:  # h + K(h), the shortcut projecting the pre-activated input
            pre = act(norm("bn1", x))
            shortcut = F.conv2d(pre, weight("shortcut"), stride=down) if reshapes else x
            out = act(norm("bn2", F.conv2d(pre, weight("conv1"), stride=down, padding=1)))
            return F.conv2d(out, weight("conv2"), padding=1) + shortcut
        if edge.op == "basic":
            out = act(norm("bn1", F.conv2d(x, weight("conv1"), stride=down, padding=1)))
            out = norm("bn2", F.conv2d(out, weight("conv2"), padding=1))
            shortcut = norm("shortcut_norm", F.conv2d(x, weight("shortcut"), stride=down)) if reshapes else x
            return act(out + shortcut)
        raise AssertionError(f"the oracle does not know op {edge.op!r}")

    def _prenet(self, x: Tensor, training: bool) -> Tensor:
        for i, layer in enumerate(self.doc.get("prenet", [])):
            _, p = _op(layer)
            k = p.get("kernel", 3)
            x = F.conv2d(x, self.tensors[f"prenet.{i}.conv.weight"], self.tensors.get(f"prenet.{i}.conv.bias"),
                         padding=k // 2)
            x = self.act(self._bn(f"prenet.{i}.norm", x, training))
        return x

    def _head(self, xs: list[Tensor], norm_step: int, training: bool) -> Tensor:
        features = []
        for name, x in zip(self.head_norms, xs):
            if self.head_norm != "none":
                x = self.act(self._apply_norm(name, x, self.head_norm, self.readout_steps, norm_step, training))
            if self.head_pool == "avg":
                x = x.mean((2, 3))
            elif self.head_pool == "max":
                x = x.amax((2, 3))
            features.append(x.flatten(1))
        return F.linear(torch.cat(features, 1), self.tensors["head.fc.weight"], self.tensors["head.fc.bias"])

    def run(self, x: Tensor, steps: int | None = None, readout: str | None = None, return_states: bool = False,
            training: bool = False) -> Any:
        """What `model(x, steps=..., readout=..., return_states=...)` returns, in train or eval mode."""
        last = self.steps if steps is None else steps
        readout_steps = self.readout_steps if steps is None else [last]
        timeline = self.timeline(last)
        areas = self.readout_areas
        arrival = {a: (v[0] if v else None) for a, v in timeline.versions.items()}
        for area in areas:
            if arrival[area] is None or min(readout_steps) < arrival[area]:
                raise Refused(f"{area} has no value at step {min(readout_steps)}")
        first = max(arrival[area] for area in areas)  # every readout area holds a value from here on
        wanted_steps = range(first, last + 1) if readout == "all" else readout_steps
        # What was asked for, and everything it depends on.
        if return_states:
            needed = {(a, v) for a, versions in timeline.versions.items() for v in versions if a != INPUT}
        else:
            needed = {(area, timeline.version(area, r)) for area in areas for r in wanted_steps}
            stack = list(needed)
            while stack:
                a, v = stack.pop()
                reads_of = [(e.source, r) for e, r in timeline.updates[v][a] if e.source != INPUT and r != SILENT]
                if self.stateful(a) and v and timeline.version(a, v - 1) is not None:
                    reads_of.append((a, timeline.version(a, v - 1)))  # the cell's state
                for need in reads_of:
                    if need not in needed:
                        needed.add(need)
                        stack.append(need)
        entering = self._prenet(x, training)  # one image: the same frame at every step
        values = {(INPUT, t): entering for t in range(last + 1)}
        values |= {(a, SILENT): torch.zeros(x.shape[0], *shape, dtype=self.dtype)
                   for a, shape in self.shapes.items() if a != INPUT}
        memory: dict[tuple[str, int], Tensor | None] = {}  # cells' memories (an LSTM's c), by (area, step)
        for t, now in enumerate(timeline.updates):
            waiting = [(a, firings) for a, firings in now.items() if (a, t) in needed]
            while waiting:  # an area once the values its firings read exist (zero-delay edges read this step's)
                a, firings = next((a, f) for a, f in waiting if all((e.source, r) in values for e, r in f))
                waiting.remove((a, firings))
                drive = [self._call(e, t, values[(e.source, r)], training) for e, r in firings if not e.modulating]
                gain = [self._call(e, t, values[(e.source, r)], training) for e, r in firings if e.modulating]
                d = sum(drive[1:], drive[0]) if drive else None
                if d is not None and gain:
                    d = d * (1 + self.gain[a](sum(gain[1:], gain[0])))
                if self.cells[a][0] == "sum":
                    values[(a, t)] = d
                    continue
                if d is None:
                    d = torch.zeros(x.shape[0], *self.shapes[a], dtype=self.dtype)
                prev = timeline.version(a, t - 1) if t else None
                h = values[(a, prev)] if prev is not None and self.stateful(a) else None
                values[(a, t)], memory[(a, t)] = self._cell(a, t, d, h, memory.get((a, prev)), training)
        logits, by_value = {}, {}
        for r in wanted_steps:  # a readout at r uses the norm of the spec's first readout step at or after r
            norm_step = next((t for t in self.readout_steps if t >= r), self.readout_steps[-1])
            held = (tuple(timeline.version(area, r) for area in areas), norm_step)
            if held not in by_value:  # the head runs once per value and norm
                by_value[held] = self._head([values[(a, v)] for a, v in zip(areas, held[0])], norm_step, training)
            logits[r] = by_value[held]
        if readout == "all":
            result = logits
        else:
            result = torch.stack([logits[r] for r in readout_steps]).mean(0)
        if not return_states:
            return result
        states = {(a, t): values[(a, timeline.version(a, t))]
                  for a in self.doc["areas"] for t in range(last + 1) if timeline.version(a, t) is not None}
        return result, states
