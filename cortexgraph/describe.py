"""Short texts for steps, ops, weights and edges: shared by the drawings and the model's printed form."""

from __future__ import annotations

from .analysis import Edge


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
    params = edge.params.model_dump(exclude_defaults=True) if edge.params is not None else {}
    extra = ", ".join(f"{k}={v}" for k, v in params.items())
    return (edge.written or edge.op) + (f"({extra})" if extra else "")


def weights_text(edge: Edge) -> str:
    if edge.tie:
        return f"tied to {edge.tie}"
    if edge.share == "time":
        return "shared"
    return "per step" if edge.share == "none" else "groups " + " | ".join(format_steps(g) for g in edge.share)


def edge_label(edge: Edge, steps: int) -> str:
    lines = [op_text(edge)]
    when = "all steps" if edge.steps == tuple(range(1, steps + 1)) else f"@ {format_steps(edge.steps)}"
    if edge.is_input:
        when = "@ " + format_steps(edge.steps)
    lines.append(when + (f", delay {edge.delay}" if edge.delay != 1 else ""))
    if not edge.is_input or edge.op != "identity":
        lines.append(weights_text(edge) + {"per_step": "", "shared": ", one norm", "none": ", no norm"}[edge.norm])
    return "\n".join(lines)
