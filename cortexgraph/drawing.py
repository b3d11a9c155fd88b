"""Plan -> pictures (graphviz): the rolled area graph, the unrolled space-time grid, the matrix.

Everything drawn comes from the Plan the module runs (and the module's own
parameter counts), so a picture shows what computes: pruned work is absent,
tied edges share their owner's colour, silent states are not drawn.
Edges are coloured by their kind (feedforward, feedback, lateral, skip,
input), which the analysis derives (`Plan.kinds`). Here: which view, its size
checked before Graphviz runs, and rendering; the views are `drawing_views.py`.
"""

from __future__ import annotations

from typing import Any

import graphviz

from .compiler import compile
from .drawing_views import matrix, rolled, unrolled
from .plan import Plan

VIEWS = ("rolled", "unrolled", "matrix")
FORMATS = ("svg", "png", "pdf", "dot")
# Past these, Graphviz takes minutes and files grow to gigabytes (a 1,000-area matrix: 86 s, 5.3 GB, a
# 1.3 GB SVG); measured: a 300-area matrix (270,000 cells) 8 s and 85 MB, a 1,000-area chain's rolled view
# (3,000 nodes and edges) 4 s.
MAX_ELEMENTS = {"rolled": 5_000, "unrolled": 5_000, "matrix": 40_000}


class DrawError(RuntimeError):
    """A drawing that cannot be rendered (usually: Graphviz's `dot` is not installed)."""


class TooBigToDraw(ValueError):
    """A drawing past the size that renders in seconds; says how to draw it anyway."""


def draw(model: Any, view: str = "rolled", steps: int | None = None, collapse: int = 3,
         allow_imports: bool = False, max_elements: int | None = None) -> graphviz.Digraph:
    """A picture of a spec, its Plan or a built model: `view` is rolled, unrolled or matrix.

    `model` is a CortexNet, a Plan, or anything `compile` takes (a path, a bundled
    name, text, a dict, a Spec); a spec is not built: its Plan is drawn, without
    torch (parameter counts come from the Plan too). `steps` replaces a
    spec's steps (as `cortexgraph compile --steps` does), or draws a built
    model's run of that many steps (with the weights it has: past its horizon
    that follows `defaults.beyond`). In the unrolled view, runs of at least
    `collapse` identical steps become one column. A drawing of more than
    `max_elements` nodes and edges (cells for the matrix; default: MAX_ELEMENTS
    of the view) is refused with TooBigToDraw before Graphviz runs.
    """
    if view not in VIEWS:
        raise ValueError(f"view is one of {', '.join(VIEWS)}; got {view!r}")
    if isinstance(getattr(model, "plan", None), Plan):  # a built model (a CortexNet): the run it makes
        plan = model.plan if steps is None else model.plan_for(steps)
    elif isinstance(model, Plan):
        plan = model if steps is None else compile(model.spec, steps=steps, allow_imports=allow_imports)
    else:
        plan = compile(model, steps=steps, allow_imports=allow_imports)
    bound = MAX_ELEMENTS[view] if max_elements is None else max_elements
    if view == "matrix":
        _check_size(plan, view, _matrix_cells(plan), bound)
        return matrix(plan)
    if view == "rolled":
        graph = rolled(plan, {area: plan.parts[area].parameters for area in plan.spec.areas})
    else:
        graph = unrolled(plan, collapse)
    _check_size(plan, view, len(graph.body), bound)  # built in Python in linear time; Graphviz is the cost
    return graph


def _check_size(plan: Plan, view: str, elements: int, bound: int) -> None:
    if elements > bound:
        what = "cells" if view == "matrix" else "nodes and edges"
        raise TooBigToDraw(f"the {view} view of {plan.spec.name} has {elements:,} {what}, more than "
                           f"drawings show by default ({bound:,}, which Graphviz renders in seconds); draw "
                           f"it anyway with --max-elements {elements} (draw(..., max_elements=N)), or draw "
                           "another view")


def _matrix_cells(plan: Plan) -> int:
    areas = len(plan.spec.areas)
    return (areas + 1) * (areas + 1) + len(plan.edges) * (plan.steps + 2)


def format_of(path: str | None, fmt: str | None = None) -> str:
    """The format to write: `fmt` if given, else the path's suffix, else svg (checked by `render`)."""
    return fmt or (path.rsplit(".", 1)[-1].lower() if path and "." in path else "svg")


def render(graph: graphviz.Digraph, path: str, fmt: str | None = None, replace: bool = True, hint: str = "") -> str:
    """Write `graph` to `path` in `fmt` (default: the path's suffix) by the rules of `atomic` (never
    through a link or over a device; `replace=False`: never over a file); returns the path written."""
    from .atomic import write_file

    write_file(path, rendered(graph, format_of(path, fmt)), replace, hint)
    return path


def rendered(graph: graphviz.Digraph, fmt: str) -> bytes:
    """`graph` in `fmt`, as bytes (Graphviz's `dot` renders every format but dot itself)."""
    if fmt not in FORMATS:
        raise DrawError(f"cannot write {fmt!r}: formats are {', '.join(FORMATS)}")
    if fmt == "dot":
        return graph.source.encode()
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise DrawError(f"rendering {fmt} needs Graphviz's `dot` program: install it (Debian/Ubuntu: "
                        "apt-get install graphviz; macOS: brew install graphviz), or write --format dot") from None
    except graphviz.CalledProcessError as exc:
        raise DrawError(f"Graphviz failed: {exc.stderr.decode(errors='replace').strip()}") from None
