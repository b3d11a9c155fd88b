"""Short texts for steps, ops, weights, edges and the head: shared by the drawings and the model's printed
form, both read from the Plan."""

from __future__ import annotations

from typing import Any

from .ops.norm_spec import NormSpec
from .ops.op_params import PoolAfter
from .plan import INPUT, Edge, Plan, WeightSet, every_step


def format_steps(steps: tuple[int, ...] | list[int]) -> str:
    """[1, 2, 3, 5, 7, 9] -> '1-3, 5-9/2'."""
    steps = list(steps)
    parts, i = [], 0
    while i < len(steps):
        j = i
        if i + 1 < len(steps):
            gap = steps[i + 1] - steps[i]
            while j + 1 < len(steps) and steps[j + 1] - steps[j] == gap:
                j += 1
        if j - i >= 2 or (j - i == 1 and steps[j] - steps[i] == 1):
            gap = steps[i + 1] - steps[i]
            parts.append(f"{steps[i]}-{steps[j]}" + (f"/{gap}" if gap > 1 else ""))
            i = j + 1
        else:
            parts.append(str(steps[i]))
            i += 1
    return ", ".join(parts)


def op_text(edge: Edge) -> str:
    text = op_text_of(edge.written or edge.op, edge.params)
    if edge.activation == "none" and not edge.is_input:
        text += ", linear" if edge.norm.policy == "none" else ", no activation"
    return text + (", modulating" if edge.modulating else "") + (f", into {edge.into}" if edge.into else "")


def op_text_of(name: str, params: Any) -> str:
    """An op or a cell with the parameters the spec set: `down(kernel=5)`, `leaky(tau=4.0)`."""
    given = params.model_dump(exclude_defaults=True) if params is not None else {}
    extra = ", ".join(_param_text(k, getattr(params, k), v) for k, v in given.items())
    return name + (f"({extra})" if extra else "")


def _param_text(name: str, value: Any, dumped: Any) -> str:
    if isinstance(value, NormSpec):  # `norm=group norm (32 groups)`, not its fields
        return f"{name}={norm_text(value).removeprefix(', ') or 'per step'}"
    if isinstance(value, PoolAfter):  # `pool=max 3/2 pad 1`
        return f"{name}={value.kind} {value.kernel}/{value.stride}" + (f" pad {value.padding}" if value.padding else "")
    return f"{name}={dumped}"


def weights_text(edge: Edge) -> str:
    if edge.tie:
        return f"tied to {edge.tie}"
    if edge.share == "time":
        return "shared"
    return "per step" if edge.share == "none" else "groups " + " | ".join(format_steps(g) for g in edge.share)


def edge_label(edge: Edge, steps: int) -> str:
    lines = [op_text(edge)]
    when = "all steps" if every_step(edge, steps) else f"@ {format_steps(edge.steps)}"
    if edge.is_input:
        when = "@ " + format_steps(edge.steps)
    lines.append(when + (f", delay {edge.delay}" if edge.delay != edge.usual_delay else ""))
    if not edge.is_input or not edge.passes_through:
        lines.append(weights_text(edge) + (norm_text(edge.norm) if not edge.passes_through else ""))
    return "\n".join(lines)


def head_text(plan: Plan) -> str:
    head = plan.spec.readout.head
    norm = plan.head_norm
    kind = "" if norm.kind == "batch" else f"{norm.kind} "
    text = {"per_step": f"{kind}norm per step, act, ", "shared": f"{kind}norm, act, ", "none": ""}[norm.policy]
    return f"{text}{head.pool} pool, linear{'' if head.bias else ' (no bias)'}"


def norm_text(norm: NormSpec) -> str:
    """', one norm', ', no norm', ', group norm (32 groups)', ...: nothing for time-specific batch norms."""
    if norm.policy == "none":
        return ", no norm"
    kind = {"batch": "", "group": f"group norm ({norm.groups} groups)", "layer": "layer norm",
            "instance": "instance norm"}[norm.kind]
    if not kind:
        return ", one norm" if norm.policy == "shared" else ""
    return f", {kind}" + (" per step" if norm.policy == "per_step" else "")


def model_text(plan: Plan) -> str:
    """A model in a page: its size, then one row per edge (op, steps, weights, parameters), pre-net and head."""
    spec = plan.spec
    shape = "x".join(map(str, plan.input_shape))
    title = (f"{spec.name}: input {shape}, {len(spec.areas)} areas, {spec.steps} steps, readout "
             f"{spec.readout.label} at step {format_steps(plan.readout_steps)}, {plan.size.parameters:,} parameters")
    rows = [("prenet", " -> ".join(op.name for op, _, _ in plan.prenet) or "(none)",
             "x".join(map(str, plan.shapes[INPUT])), f"{plan.parts['prenet'].parameters:,}")]
    by_edge: dict[str, list[WeightSet]] = {}
    for wset in plan.weight_sets.values():
        by_edge.setdefault(wset.edge, []).append(wset)
    for edge in plan.edges.values():
        sets = by_edge.get(edge.name, [])
        runs = sorted({t for g in sets for t in g.steps}) or list(edge.steps)
        norm = ("" if edge.passes_through else
                {"per_step": ", norm per step", "shared": ", one norm", "none": ""}[edge.norm.policy]
                if edge.norm.kind in ("batch", "none") else norm_text(edge.norm))
        several = f" ({len(sets)} sets)" if len(sets) > 1 else ""
        text = f"{op_text(edge)} at {format_steps(runs) or 'no step'}"
        if not (edge.is_input and edge.passes_through):
            text += f"; weights {weights_text(edge)}{several}{norm}"
        rows.append((f"{edge.target} <- {edge.name}", text, "x".join(map(str, plan.shapes[edge.target])),
                     f"{sum(g.size.parameters for g in sets):,}"))
    for area, cell in plan.cell_sets.items():
        given = plan.area_cells[area]
        gain = ", gain 1 + tanh(M)" if given.modulation == "tanh" else ""
        rows.append((f"{area} cell", f"{op_text_of(cell.name, given.params)} at {format_steps(cell.steps)}{gain}",
                     "x".join(map(str, plan.shapes[area])), f"{cell.size.parameters:,}"))
    rows.append(("head", f"{head_text(plan)} to {spec.readout.head.classes} classes", "",
                 f"{plan.parts['head'].parameters:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join([title] + [f"  {a:{widths[0]}}  {b:{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}".rstrip()
                                 for a, b, c, d in rows])
