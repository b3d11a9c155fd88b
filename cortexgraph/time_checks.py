"""The checks of a spec that concern its loops and its time: loops with no nonlinearity on them, cycles of
zero-delay edges, areas the input never reaches, readouts before signal, and edges that never fire, fire only
on silence or feed nothing read out. Each reports to the `Checker` (`checks.py`) it is given."""

from __future__ import annotations

import networkx as nx

from .lowering import INPUT, AreaCell, Edge, Reporter
from .spec import Spec
from .timeline import Timeline, live, zero_delay_cycle


def check_linear_loops(report: Reporter, edges: tuple[Edge, ...], cells: dict[str, AreaCell]) -> None:
    """A recurrent loop with no nonlinearity on it (linear edges into areas whose cells are linear), through
    a weighted edge, is a linear system: its values decay or grow geometrically with the steps. A warning,
    as it may be meant."""
    linear = {area for area, cell in cells.items() if cell.nonlinearity == "none"}
    graph = nx.MultiDiGraph()
    for edge in edges:
        if edge.is_linear and edge.drives and edge.source in linear and edge.target in linear:
            graph.add_edge(edge.source, edge.target, edge=edge)
    for group in nx.strongly_connected_components(graph):  # one loop of each group of areas
        if all(edge.passes_through for _, _, edge in graph.subgraph(group).edges(data="edge")):
            continue  # identity edges only: an area that keeps (or adds up) its values, not a linear map
        try:
            cycle = [graph.edges[u, v, k]["edge"] for u, v, k in nx.find_cycle(graph.subgraph(group))]
        except nx.NetworkXNoCycle:
            continue
        loop = _loop_text(cycle)
        report.warn(cycle[0].loc, f"the loop {loop} has no nonlinearity (its edges are linear and its areas' "
                                "cells add none), so its values decay or grow geometrically with the steps",
                  "give an edge an activation, or its areas a cell with one, e.g. cell: {act: {act: relu}}")

def check_same_step(report: Reporter, edges: tuple[Edge, ...]) -> None:
    cycle = zero_delay_cycle(edges)
    if cycle is not None:
        loop = _loop_text(cycle)
        names = ", ".join(repr(e.name) for e in cycle)
        where = cycle[0].loc + ("delay",)
        report.error(where if where in report.source.values else cycle[0].loc,
                   f"zero-delay edges form a cycle: {loop} (edges {names}); within one step no area can be "
                   "computed first",
                   "give one of these edges delay: 1, so that it reads the previous step")


def area_graph(spec: Spec, edges: tuple[Edge, ...]) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph()
    graph.add_node(INPUT)
    graph.add_nodes_from(spec.areas)
    for edge in edges:
        graph.add_edge(edge.source, edge.target, key=edge.name, edge=edge)
    return graph

def check_time(report: Reporter, spec: Spec, edges: tuple[Edge, ...], graph: nx.MultiDiGraph, timeline: Timeline,
               stateful: frozenset[str]) -> None:
    reachable = nx.descendants(graph, INPUT)
    for area in spec.areas:
        if area not in reachable:
            report.error(("areas", area), f"area {area!r} is unreachable from the input",
                       "add an edge into it (or an input), or remove it", key=True)
        elif timeline.arrival[area] is None:
            report.warn(("areas", area), f"signal never reaches {area!r} within the {spec.steps} steps",
                      "its edges fire before their sources have signal; check 'at' and 'delay'")
    if any(area not in spec.areas for area in spec.readout.areas):
        return
    for i, readout in enumerate(spec.readout.areas):
        held = timeline.versions[readout]  # under silence: zeros an area may hold a value before signal
        first = held[0] if held else None
        step = min(spec.readout_steps)
        if first is None or step < first:
            when = f"first reaches it at step {first}" if first is not None else "never reaches it"
            report.error(("readout", "step") if spec.readout.step is not None else spec.readout.area_loc(i),
                       f"{readout!r} is read out at step {step}, but signal {when}",
                       "read out later, or add a faster path to it")
            return
    wanted = {(area, timeline.version(area, step)) for area in spec.readout.areas
              for step in spec.readout_steps}
    needed = live(timeline, wanted, stateful)
    fired = {edge.name for now in timeline.updates for firings in now.values() for edge, _ in firings}
    useful = {edge.name for area, t in needed for edge, _ in timeline.updates[t].get(area, ())}
    last = max(spec.readout_steps)
    for edge in edges:
        if not edge.steps:
            if not edge.rule.beyond(spec.steps):
                report.warn(edge.loc, f"edge {edge.name!r} never fires within the {spec.steps} steps")
        elif edge.name not in fired:
            arrive = timeline.arrival.get(edge.source)  # never an input edge: the input is never silent
            report.warn(edge.loc, f"edge {edge.name!r} fires only while {edge.source!r} is silent"
                      + (f" (signal reaches it at step {arrive})" if arrive is not None else ""),
                      "it computes nothing; check 'at' and 'delay'")
        elif edge.name not in useful:
            report.warn(edge.loc, f"edge {edge.name!r} feeds nothing that reaches the readout "
                                f"({spec.readout.label} at step {last})",
                      "its work is pruned; remove it or read out later")


def _loop_text(cycle: list[Edge]) -> str:
    """`A -> B -> A`: the areas a cycle of edges goes through."""
    return " -> ".join([cycle[0].source] + [e.target for e in cycle])
