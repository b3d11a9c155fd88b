"""The views a drawing shows, each from the Plan alone: the rolled area graph, the unrolled space-time grid and
the transition matrix (`drawing.draw` picks one, checks its size and renders it)."""

from __future__ import annotations

import html

import graphviz

from .describe import edge_label, format_steps, head_text, op_text, op_text_of
from .plan import INPUT, ZEROS, Edge, Plan, Stimulus, every_step, fires_throughout
from .units import at_step, ms

PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4",
           "#b2182b", "#35978f", "#8c510a", "#762a83")
KIND_STYLE = {
    "feedforward": {"color": "#222222", "style": "solid", "penwidth": "1.4"},
    "lateral": {"color": "#1f78b4", "style": "solid", "penwidth": "1.2"},
    "feedback": {"color": "#d95f02", "style": "dashed", "penwidth": "1.2", "constraint": "false"},
    "skip": {"color": "#7570b3", "style": "dotted", "penwidth": "1.4"},
    "input": {"color": "#555555", "style": "solid", "penwidth": "1.2"},
}
FONT = "Helvetica"



# --- labels --------------------------------------------------------------------------------------------


def _count(n: int) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _weight_colours(plan: Plan) -> dict[str, str]:
    """A colour per set of weights; a tied set takes its owner's."""
    owners = sorted({g.tie or g.path for g in plan.weight_sets.values()})
    colour = {path: PALETTE[i % len(PALETTE)] for i, path in enumerate(owners)}
    return {g.path: colour[g.tie or g.path] for g in plan.weight_sets.values()}


def _base(name: str, rankdir: str) -> graphviz.Digraph:
    g = graphviz.Digraph(name=name)
    g.attr(rankdir=rankdir, fontname=FONT, newrank="true", nodesep="0.35", ranksep="0.55")
    g.attr("node", fontname=FONT, fontsize="11")
    g.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
    return g


def _prenet_text(plan: Plan) -> str:
    """Each pre-net layer as the Plan resolved it (its parameters validated, defaults filled in)."""
    layers = []
    for op, params, out in plan.prenet:
        kernel, stride, name = getattr(params, "kernel", None), getattr(params, "stride", None), op.name
        if name == "conv":
            layers.append(f"conv {kernel}x{kernel}/{stride}, {out[0]}")
        else:
            layers.append(f"{name} {kernel}/{stride or kernel}" if kernel is not None else name)
    return "<br/>".join(html.escape(x) for x in layers) or "identity"


def _shape(shape: tuple[int, int, int]) -> str:
    return "x".join(map(str, shape))


# --- rolled ---------------------------------------------------------------------------------------------


def rolled(plan: Plan, params: dict[str, int]) -> graphviz.Digraph:
    spec = plan.spec
    level, kinds = plan.levels, plan.kinds
    g = _base(f"{spec.name}-rolled", "BT")
    g.attr(label=f"{spec.name}: {plan.steps} steps, readout {spec.readout.label} at step "
                 f"{format_steps(plan.readout_steps)}", labelloc="t", fontsize="13")
    image = f"image<br/>{_shape(plan.input_shape)}"
    if spec.input.stimulus is not None:
        image += f"<br/><font point-size='9'>{html.escape(_stimulus_text(spec.input.stimulus, plan.steps))}</font>"
    g.node("image", f"<{image}>", shape="plaintext")
    g.node(INPUT, f"<<b>pre-net</b><br/>{_prenet_text(plan)}<br/>{_shape(plan.shapes[INPUT])}>",
           shape="box", style="rounded,filled", fillcolor="#f0f0f0")
    g.edge("image", INPUT)
    for lvl in sorted(set(level.values())):
        with g.subgraph() as same:
            same.attr(rank="same")
            for area in spec.areas:
                if level[area] != lvl:
                    continue
                first = plan.arrival[area]
                label = (f"<<b>{html.escape(area)}</b><br/>{_shape(plan.shapes[area])}<br/>{_cell_text(plan, area)}"
                         f"<font point-size='9'>{_count(params[area])} params, signal at step "
                         f"{at_step(first, spec.dt_ms)}</font>>")
                border = "3" if area in plan.readout_areas else "1.2"
                same.node(f"area_{area}", label, shape="box", style="rounded,filled", fillcolor="#fbfbf4",
                          penwidth=border)
    g.node("head", f"<<b>head</b><br/>{head_text(plan)}<br/>{spec.readout.head.classes} classes>", shape="box",
           style="rounded,filled", fillcolor="#f0f0f0")
    for area in plan.readout_areas:
        g.edge(f"area_{area}", "head", label=f"step {format_steps(plan.readout_steps)}", penwidth="2")
    running = {c.edge.name for u in plan.updates for c in u.calls}
    for edge in sorted(plan.edges.values(), key=lambda e: e.name):
        source = INPUT if edge.is_input else f"area_{edge.source}"
        style = dict(KIND_STYLE[kinds[edge.name]], fontcolor=KIND_STYLE[kinds[edge.name]]["color"])
        if edge.name not in running:
            style.update(color="#bbbbbb", fontcolor="#999999")  # pruned: never computes for the readout
        g.edge(source, f"area_{edge.target}", label=edge_label(edge, spec.steps), **(style | _edge_marks(edge)))
    marks = {m for e in plan.edges.values() for m in MARKS if _marked(e, m)}
    _legend(g, sorted({kinds[e.name] for e in plan.edges.values()}), [m for m in MARKS if m in marks])
    return g


# How an edge's arrow shows what it does besides adding a non-negative contribution (existing drawings, whose
# edges do only that, are unchanged).
MARKS = {
    "modulating": ({"arrowhead": "odot"}, "-o  modulating (scales the drive)"),
    "signed": ({"arrowhead": "tee"}, "-|  linear (signed: can inhibit)"),
    "same step": ({"penwidth": "2.6"}, "==  same step (delay 0)"),
}


def _marked(edge: Edge, mark: str) -> bool:
    if mark == "modulating":
        return edge.modulating
    if mark == "signed":
        return not edge.modulating and edge.activation == "none" and not edge.is_input
    return edge.delay == 0 and not edge.is_input


def _edge_marks(edge: Edge) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for mark, (style, _) in MARKS.items():
        if _marked(edge, mark):
            attrs.update(style)
    return attrs


def _cell_text(plan: Plan, area: str) -> str:
    """The area's cell where it is not `sum` (with its modulation's g where not the identity)."""
    cell = plan.area_cells[area]
    if cell.is_sum and cell.modulation == "identity":
        return ""
    text = "sum" if cell.is_sum else op_text_of(cell.name, cell.params)
    gain = ", gain 1 + tanh(M)" if cell.modulation == "tanh" else ""
    return f"<font point-size='10'>cell: {html.escape(text)}{gain}</font><br/>"


def _legend(g: graphviz.Digraph, kinds: list[str], marks: list[str] = ()) -> None:
    dashes = {"dashed": "- - -", "dotted": ". . .", "solid": "----"}
    rows = "".join(f"<tr><td align='left'><font color='{KIND_STYLE[k]['color']}'>"
                   f"{dashes[KIND_STYLE[k]['style']]} {k}</font></td></tr>" for k in kinds)
    rows += "".join(f"<tr><td align='left'>{html.escape(MARKS[m][1])}</td></tr>" for m in marks)
    with g.subgraph(name="cluster_legend") as legend:
        legend.attr(label="", style="invis")
        legend.node("legend", f"<<table border='0' cellspacing='0'>{rows}</table>>", shape="plaintext",
                    fontsize="9")


# --- unrolled -------------------------------------------------------------------------------------------


def _signature(plan: Plan, step: int) -> tuple:
    """What a step computes, relative to its own time: equal signatures draw the same."""
    # (an input call counts as its step: steps that take in a frame are drawn apart)
    return tuple(sorted((u.area, tuple(sorted((c.edge.name, c.weights.path, c.source,
                                               step if c.edge.is_input else step - c.reads) for c in u.calls)))
                        for u in plan.schedule[step]))


def _columns(plan: Plan, collapse: int) -> list[tuple[int, int]]:
    """(first, last) step of each column: runs of `collapse` or more identical steps share one."""
    columns: list[tuple[int, int]] = []
    step = 0
    readouts = set(plan.readout_steps)
    while step <= plan.steps:
        end = step
        sig = _signature(plan, step)
        while (end + 1 <= plan.steps and _signature(plan, end + 1) == sig and step > 0
               and not readouts & {end + 1} and sig):
            end += 1
        if end - step + 1 >= collapse:
            columns.append((step, end))
        else:
            columns.extend((t, t) for t in range(step, end + 1))
        step = end + 1
    return columns


def unrolled(plan: Plan, collapse: int) -> graphviz.Digraph:
    """Rows are areas (lowest at the bottom), columns steps; every node sits at a fixed place, so
    Graphviz only draws the arrows (neato with pinned positions: fast, and the grid stays a grid)."""
    spec = plan.spec
    level, kinds = plan.levels, plan.kinds
    colours = _weight_colours(plan)
    columns = _columns(plan, collapse)
    column_of = {t: i for i, (first, last) in enumerate(columns) for t in range(first, last + 1)}
    rows = [INPUT] + sorted(spec.areas, key=lambda a: (level[a], list(spec.areas).index(a)))
    y = {row: 0.7 * i for i, row in enumerate(rows)}

    def x(column: int) -> float:
        return 1.0 + 0.8 * column

    def at(px: float, py: float) -> str:
        return f"{px:.2f},{py:.2f}!"

    g = graphviz.Digraph(name=f"{spec.name}-unrolled", engine="neato")
    owners = {g.tie or g.path for g in plan.weight_sets.values()}
    key = "colour = weights" if len(owners) <= len(PALETTE) else f"{len(owners)} sets of weights, colours repeat"
    g.attr(fontname=FONT, fontsize="13", labelloc="t", overlap="true", splines="line",
           outputorder="edgesfirst", label=f"{spec.name} unrolled: {plan.calls} of {plan.naive_calls} edge calls "
                                           f"run (silent and unread work pruned); {key}")
    g.attr("node", fontname=FONT, fontsize="9", shape="circle", width="0.26", fixedsize="true", label="")
    g.attr("edge", arrowsize="0.6", penwidth="1.2")
    top = y[rows[-1]] + 0.6
    for row in rows:
        g.node(f"row_{row}", f"<<b>{html.escape('image' if row == INPUT else row)}</b>>", shape="plaintext",
               width="0.8", pos=at(0.0, y[row]))
    for i, (first, last) in enumerate(columns):
        title = f"t={first}" if first == last else f"t={first}-{last}<br/>x{last - first + 1}"
        if plan.spec.dt_ms:  # the time the column starts at
            title += f"<br/>{ms(first, plan.spec.dt_ms)}"
        g.node(f"col_{i}", f"<{title}>", shape="plaintext", width="0.7", pos=at(x(i), top))
    for update in [u for first, _ in columns for u in plan.schedule[first]]:
        readout = update.area in plan.readout_areas and any(
            columns[column_of[update.step]][0] <= r <= columns[column_of[update.step]][1] for r in plan.readout_steps)
        g.node(f"{update.area}@{column_of[update.step]}", style="filled", fillcolor="#333333", color="#333333",
               peripheries="2" if readout else "1", pos=at(x(column_of[update.step]), y[update.area]))
    stimulus = spec.input.stimulus
    entering = {0} if stimulus is None else {column_of[c.reads] for u in plan.updates if u.step in column_of
                                             for c in u.calls if c.edge.is_input}  # the frames entering, a column each
    for i in sorted(entering):
        g.node(f"{INPUT}@{i}", style="filled", fillcolor="#999999", color="#555555", pos=at(x(i), y[INPUT]))
        if stimulus is not None:  # what is shown, under it
            g.node(f"shown_{i}", f"<{html.escape(_shown(plan, columns[i][0]))}>", shape="plaintext",
                   fixedsize="false", fontsize="8", pos=at(x(i), y[INPUT] - 0.35))
    drawn = set()
    for first, _ in columns:
        for update in plan.schedule[first]:
            for call in update.calls:
                if call.reads == ZEROS:  # a silent source's zeros (silence: computed): no value to draw it from
                    continue
                # an input call reads the frame shown at its step less its delay (one image: always the same)
                reads = column_of[0 if stimulus is None and call.edge.is_input else call.reads]
                src = f"{call.source}@{reads}"
                dst = f"{update.area}@{column_of[first]}"
                if (src, dst, call.weights.path) not in drawn:
                    drawn.add((src, dst, call.weights.path))
                    kind = kinds[call.edge.name]
                    g.edge(src, dst, **({"color": "#777777" if kind == "input" else colours[call.weights.path],
                                         "style": "dashed" if kind == "feedback" else "solid"}
                                        | _edge_marks(call.edge)))
    head_x = x(len(columns)) + 0.2
    g.node("head", f"<head<br/>{spec.readout.head.classes} classes>", shape="box", style="rounded",
           fixedsize="false", pos=at(head_x, y[plan.readout_areas[-1]]))
    for step in plan.readout_steps:
        for area in plan.readout_areas:
            g.edge(f"{area}@{column_of[_held(plan, area, step)]}", "head", penwidth="2")
    legend = _colour_legend(plan, colours)
    if legend:
        g.node("colours", legend, shape="plaintext", fixedsize="false", pos=at(head_x + 1.6, y[rows[len(rows) // 2]]))
    return g


def _shown(plan: Plan, step: int) -> str:
    """What enters at `step`, in a word: the image, frame k (of a sequence), a blank or the mask."""
    frame = plan.shown(step)  # for a sequence: frame `step`, however long it is
    if isinstance(frame, str):
        return frame
    return f"frame {frame}" if plan.spec.input.stimulus.frames else "image"


def _stimulus_text(stimulus: Stimulus, steps: int) -> str:
    if stimulus.frames is not None:
        return f"a sequence: frame t at step t, the last {'held' if stimulus.frames == 'hold' else 'cycled'}"
    shown = tuple(stimulus.show.resolve(steps, first=0))
    other = "a mask" if stimulus.then == "mask" else f"a blank ({stimulus.blank:g})"
    return f"shown at steps {format_steps(shown) if shown else 'none'}, then {other}"


def _colour_legend(plan: Plan, colours: dict[str, str]) -> str | None:
    """A table of which colour is which set of weights, when each set has a colour of its own."""
    owners: dict[str, list[str]] = {}
    for wset in plan.weight_sets.values():
        if not plan.edges[wset.edge].passes_through:
            owners.setdefault(colours[wset.path], []).append(wset.name)
    if not owners or len({g.tie or g.path for g in plan.weight_sets.values()}) > len(PALETTE):
        return None
    rows = "".join(f"<tr><td bgcolor='{colour}' width='14'> </td><td align='left'>{html.escape(', '.join(names))}"
                   f"</td></tr>" for colour, names in owners.items())
    title = "<tr><td colspan='2' align='left'><b>weights</b></td></tr>"
    return f"<<table border='0' cellspacing='2'>{title}{rows}</table>>"


def _held(plan: Plan, area: str, step: int) -> int:
    held = [u.step for updates in plan.schedule[: step + 1] for u in updates if u.area == area]
    return held[-1]


# --- matrix ---------------------------------------------------------------------------------------------


def matrix(plan: Plan) -> graphviz.Digraph:
    spec = plan.spec
    level, kinds = plan.levels, plan.kinds
    areas = sorted(spec.areas, key=lambda a: (level[a], list(spec.areas).index(a)))
    sources = [INPUT] + areas
    cells: dict[tuple[str, str], list[Edge]] = {}
    for edge in plan.edges.values():
        cells.setdefault((edge.source, edge.target), []).append(edge)
    head = "".join(f"<td bgcolor='#eeeeee'><b>{html.escape(a)}</b></td>" for a in areas)
    body = ""
    for source in sources:
        row = f"<td bgcolor='#eeeeee'><b>{'input' if source == INPUT else html.escape(source)}</b></td>"
        for target in areas:
            edges = cells.get((source, target), [])
            text = "<br/>".join(_matrix_entry(e, spec.steps) for e in edges)
            if edges:
                colour = KIND_STYLE[kinds[edges[0].name]]["color"]
                row += f"<td><font color='{colour}'>{text}</font></td>"
            else:
                row += "<td> </td>"
        body += f"<tr>{row}</tr>"
    table = (f"<table border='0' cellborder='1' cellspacing='0' cellpadding='5'>"
             f"<tr><td bgcolor='#dddddd'>from \\ to</td>{head}</tr>{body}</table>")
    g = _base(f"{spec.name}-matrix", "TB")
    g.attr(label=f"{spec.name}: transition matrix", labelloc="t", fontsize="13")
    g.node("matrix", f"<{table}>", shape="plaintext")
    if not all(fires_throughout(e, spec.steps) for e in plan.edges.values()):
        g.node("timeline", f"<{_timeline(plan)}>", shape="plaintext")
        g.edge("matrix", "timeline", style="invis")
    return g



def _matrix_entry(edge: Edge, steps: int) -> str:
    """An edge's op, and when it fires and its delay where not the usual."""
    text = html.escape(op_text(edge))
    delayed = edge.delay != edge.usual_delay
    if every_step(edge, steps) and not delayed:
        return text
    return text + (f"<br/><font point-size='8'>@ {format_steps(edge.steps)}"
                   f"{', d=' + str(edge.delay) if delayed else ''}</font>")

def _timeline(plan: Plan) -> str:
    """When each transition is on: listed by the spec, and whether the Plan runs it."""
    runs = {(c.edge.name, u.step) for u in plan.updates for c in u.calls}
    head = "".join(f"<td><font point-size='8'>{t}</font></td>" for t in range(plan.steps + 1))
    body = ""
    level = plan.levels
    order = {area: (lvl, i) for i, (area, lvl) in enumerate(level.items())}
    order[INPUT] = (-1, -1)
    for edge in sorted(plan.edges.values(), key=lambda e: (order[e.target], order[e.source], e.name)):
        cells = ""
        listed = set(edge.fires_until(plan.steps))
        for t in range(plan.steps + 1):
            colour = "#333333" if (edge.name, t) in runs else "#cccccc" if t in listed else "#ffffff"
            cells += f"<td bgcolor='{colour}' width='12'> </td>"
        body += f"<tr><td align='left'>{html.escape(edge.name)}</td>{cells}</tr>"
    return (f"<table border='0' cellborder='1' cellspacing='0' cellpadding='2'>"
            f"<tr><td align='left'><b>when on</b> (dark: runs; light: listed, pruned)</td>{head}</tr>"
            f"{body}</table>")
