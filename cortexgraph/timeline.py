"""When each area gets a value: the timeline of a spec, and the work a readout needs of it.

Time: at step 0 the pre-net's output enters the input areas; an edge `r -> s` firing at step t reads r's
value at step t - delay (an edge from the input, the pre-net's output of the frame shown at t - delay).
An area is silent until something reaches it, and a silent source contributes nothing (under `silence:
computed`, its zeros), so which edges really compute at which step is known from the spec alone:
`build_timeline` sweeps the steps once (a breadth-first search over the time-expanded graph, whose edges
only point forward in time) and records, for every step, which edges contribute to which area and which
earlier value of their source they read. `live` walks that backwards from what is asked for (the readout)
to find the work that matters.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import networkx as nx

from .lowering import INPUT, ZEROS, Edge

# (edge, reads): the edge computes at the step it is listed under, reading its source's value of
# step `reads`. A plain tuple: validation makes one per edge and step, and tuples are cheapest.
Firing = tuple[Edge, int]


@dataclass
class Timeline:
    """What runs at each step, silence taken into account (see the module's docstring)."""

    steps: int
    updates: list[dict[str, list[Firing]]]  # [step][area] -> firings summed into it
    versions: dict[str, list[int]]  # area -> steps at which it gets a new value
    arrival: dict[str, int | None]  # area -> first step with signal, None if never

    def version(self, area: str, step: int) -> int | None:
        """The step whose value `area` holds at `step` (None while silent)."""
        steps = self.versions.get(area, [])
        i = bisect_right(steps, step)
        return steps[i - 1] if i else None


def same_step_order(edges: tuple[Edge, ...], areas: list[str]) -> dict[str, int] | None:
    """Each area's rank in an order that puts the source of every zero-delay edge before its target (None
    where no edge has zero delay); `zero_delay_cycle` reports a cycle that leaves no such order."""
    graph = nx.DiGraph([(e.source, e.target) for e in edges if e.delay == 0 and not e.is_input])
    if not graph:
        return None
    graph.add_nodes_from(areas)
    return {area: i for i, area in enumerate(nx.lexicographical_topological_sort(graph, key=areas.index))}


def zero_delay_cycle(edges: tuple[Edge, ...]) -> list[Edge] | None:
    """Edges of zero delay that form a cycle (an area reading its own value of the same step), if any."""
    graph = nx.MultiDiGraph()
    for edge in edges:
        if edge.delay == 0 and not edge.is_input:
            graph.add_edge(edge.source, edge.target, key=edge.name, edge=edge)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return None
    return [graph.edges[u, v, k]["edge"] for u, v, k in cycle]


def build_timeline(edges: tuple[Edge, ...], areas: list[str], steps: int, running: frozenset[str] = frozenset(),
                   silence: str = "absent") -> Timeline:
    """Sweep the steps in order: an edge contributes when its source has signal `delay` steps earlier.

    Within a step, edges of delay >= 1 read values of earlier steps; zero-delay edges then run in an
    order that puts each source before its targets (`same_step_order`), reading the source's value of
    this step where it has one. Areas in `running` (cells other than `sum`) update at every step from
    their arrival, or from step 0 under `silence: zeros` or `computed`; an area updates only where a
    driving edge fires or its cell runs (modulating edges alone change nothing). A silent source
    contributes nothing, except under `computed`, where the edge reads its zeros (`ZEROS`). `arrival` is
    where signal first reaches each area, whatever the silence policy. This is the hot loop of validation
    (one pass per edge and step), so it works on plain lists.
    """
    zeros, computed = silence != "absent", silence == "computed"
    versions: dict[str, list[int]] = {area: [] for area in areas}
    versions[INPUT] = [0]
    rank = same_step_order(edges, areas)
    modulated = any(not e.drives for e in edges)
    always, fires_at = [], [[] for _ in range(steps + 1)]
    same_step: list[list[tuple]] = [[] for _ in range(steps + 1)]
    for edge in edges:
        # (edge, its source's history, target, delay, reads the input)
        row = (edge, versions[edge.source], edge.target, edge.delay, edge.is_input)
        when = edge.fires_until(steps)
        if edge.delay == 0 and not edge.is_input:
            for t in when:
                same_step[t].append(row)
        elif not edge.is_input and when == tuple(range(1, steps + 1)):
            always.append(row)
        else:
            for t in when:
                fires_at[t].append(row)
    cells = [(area, versions[area]) for area in areas if area in running]
    order = sorted(areas, key=rank.__getitem__) if rank is not None else areas
    updates: list[dict[str, list[Firing]]] = []
    for t in range(steps + 1):
        now: dict[str, list[Firing]] = {area: [] for area, history in cells if history or zeros}
        runs = set(now)
        for edge, history, target, delay, from_input in (always + fires_at[t] if t else fires_at[t]):
            if from_input:
                reads = t - delay  # the step whose frame it carries
            elif not history:
                if not computed:
                    continue
                reads = ZEROS
            elif delay == 1:
                reads = history[-1]  # this step's own updates are appended after the loop
            else:
                i = bisect_right(history, t - delay)
                if not i and not computed:
                    continue
                reads = history[i - 1] if i else ZEROS
            if target in now:
                now[target].append((edge, reads))
            else:
                now[target] = [(edge, reads)]
        if same_step[t]:  # areas in an order that puts zero-delay sources first, each settled before it is read
            into: dict[str, list[tuple]] = {}
            for row in same_step[t]:
                into.setdefault(row[2], []).append(row)
            settled: dict[str, list[Firing]] = {}
            for area in order:
                firings = now.get(area, [])
                for edge, history, _, _, _ in into.get(area, ()):
                    if edge.source in settled:
                        reads = t
                    elif history:
                        reads = history[-1]
                    elif computed:
                        reads = ZEROS
                    else:
                        continue
                    firings = firings + [(edge, reads)]
                if area in runs or any(e.drives for e, _ in firings):
                    settled[area] = firings
            now = settled
        elif modulated:  # modulating edges (and cells' inputs) alone change nothing
            now = {a: f for a, f in now.items() if a in runs or any(e.drives for e, _ in f)}
        for area in now:
            versions[area].append(t)
        updates.append(now)
    if computed or (zeros and running):  # where signal first reaches each area: as if silence were absent
        arrival = build_timeline(edges, areas, steps, running).arrival
    else:
        arrival = {area: (v[0] if v else None) for area, v in versions.items() if area != INPUT}
    return Timeline(steps, updates, versions, arrival)


def live(timeline: Timeline, wanted: set[tuple[str, int]],
         stateful: frozenset[str] = frozenset()) -> set[tuple[str, int]]:
    """Every (area, version) that the (area, version) pairs in `wanted` depend on, themselves included: the
    values its edges read and, for areas in `stateful` (cells that read their previous value), that value."""
    seen = set(wanted)
    stack = list(wanted)
    updates = timeline.updates
    while stack:
        area, step = stack.pop()
        needs = [(edge.source, reads) for edge, reads in updates[step].get(area, ())
                 if edge.source != INPUT and reads != ZEROS]
        if area in stateful and step:
            prev = timeline.version(area, step - 1)
            if prev is not None:
                needs.append((area, prev))
        for need in needs:
            if need not in seen:
                seen.add(need)
                stack.append(need)
    return seen
