"""First-arrival steps: by hand, and against shortest paths over the time-expanded graph."""

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from cortexgraph import analyze, load_spec
from cortexgraph.analysis import INPUT, build_timeline, lower
from tests.oracle import steps_of


def spec(edges, inputs="{A: once}", steps=6, areas=("A", "B", "C"), readout="C"):
    lines = "\n".join(f"  - {e}" for e in edges)
    area_lines = "\n".join(f"  {a}: {{channels: 4, size: 8}}" for a in areas)
    return f"""
cortexgraph: 1
name: t
input: {{channels: 4, size: 8}}
areas:
{area_lines}
inputs: {inputs}
steps: {steps}
edges:
{lines}
readout: {{area: {readout}, head: {{classes: 2}}}}
"""


def arrival(text):
    return analyze(load_spec(text)).arrival


def test_chain_with_a_delay():
    # A at 0; B reads A one step back (step 1); C reads B two steps back: 1 + 2.
    assert arrival(spec(["{from: A, to: B, op: conv}", "{from: B, to: C, op: conv, delay: 2}"])) == \
        {"A": 0, "B": 1, "C": 3}


def test_listed_steps_wait_for_the_next_firing():
    # A->B fires at 3 and 5; B->C at 1, 3, 5: at 3 B is still silent (it needs B by step 2), so 5.
    edges = ["{from: A, to: B, op: conv, at: [3, 5]}", "{from: B, to: C, op: conv, at: {every: 2}}"]
    assert arrival(spec(edges)) == {"A": 0, "B": 3, "C": 5}


def test_input_injected_late():
    edges = ["{from: A, to: B, op: conv}", "{from: B, to: C, op: conv}"]
    assert arrival(spec(edges, inputs="{A: [2]}")) == {"A": 2, "B": 3, "C": 4}


def test_feedback_reaches_an_area_below():
    # C is fed only by feedback from B... which is fed by A: A 0, B 1, C 2 via the B->C edge at step 2.
    edges = ["{from: A, to: B, op: conv, at: 1}", "{from: B, to: C, op: conv, at: {from: 2}}",
             "{from: C, to: A, op: conv, at: 3}"]
    assert arrival(spec(edges)) == {"A": 0, "B": 1, "C": 2}


def test_bundled_specs():
    assert analyze(load_spec("torchvision/resnet18")).arrival == {"S1": 0, "S2": 3, "S3": 5, "S4": 7}
    assert analyze(load_spec("cornet/cornet-s")).arrival == {"V1": 0, "V2": 1, "V4": 3, "IT": 7}
    assert analyze(load_spec("liao2016/frnn4-imagenet")).arrival == {"V1": 0, "V2": 1, "V4": 2, "IT": 3}


def test_timeline_records_what_each_firing_reads():
    analysis = analyze(load_spec(spec(["{from: A, to: B, op: conv}", "{from: B, to: C, op: conv, delay: 2}",
                                       "{from: A, to: A, op: conv, at: [2]}"])))
    timeline = analysis.timeline
    ((edge, reads),) = timeline.updates[3]["C"]
    assert (edge.name, reads) == ("B->C", 1)  # C at 3 reads B's value of step 1
    ((edge, reads),) = timeline.updates[3]["B"]
    assert reads == 2  # B at 3 reads A's new value of step 2
    assert timeline.versions["A"] == [0, 2]
    assert timeline.version("A", 1) == 0 and timeline.version("C", 2) is None


# --- against networkx: reachability in the explicit time-expanded graph ---------------------

def shortest_paths(doc):
    """(area, t) has signal iff reachable from the input; keep-edges hold a value from t-1 to t, and a
    zero-delay edge joins two areas of one step.

    Read from the spec document (steps by tests/oracle.py's own reading of `at`), not from cortexgraph's
    parsed edges, so a misread rule cannot agree with itself."""
    steps, areas = doc["steps"], list(doc["areas"])
    graph = nx.DiGraph()
    for t in range(steps + 1):
        graph.add_edge("source", (INPUT, t))
        for area in areas:
            if t:
                graph.add_edge((area, t - 1), (area, t))
    for area, rule in doc["inputs"].items():
        for t in steps_of(rule, steps, first=0):
            graph.add_edge((INPUT, 0), (area, t))
    for edge in doc["edges"]:
        for t in steps_of(edge["at"], steps, first=0 if edge["delay"] == 0 else 1):
            if t - edge["delay"] >= 0:
                graph.add_edge((edge["from"], t - edge["delay"]), (edge["to"], t))
    reached = nx.descendants(graph, "source")
    return {a: min((t for t in range(steps + 1) if (a, t) in reached), default=None) for a in areas}


step_sets = st.one_of(st.just("all"), st.integers(1, 7),
                      st.lists(st.integers(1, 7), min_size=1, max_size=4, unique=True).map(sorted),
                      st.builds(lambda a, k: {"from": a, "every": k}, st.integers(1, 4), st.integers(1, 3)),
                      st.builds(lambda a, n, k: {"from": a, "to": a + n, "every": k}, st.integers(1, 4),
                                st.integers(0, 3), st.integers(1, 3)))


@st.composite
def random_specs(draw):
    areas = ["A", "B", "C", "D"][: draw(st.integers(1, 4))]
    edges = []
    for i in range(draw(st.integers(0, 7))):
        src, dst = draw(st.sampled_from(areas)), draw(st.sampled_from(areas))
        at, delay = draw(step_sets), draw(st.integers(0 if areas.index(src) < areas.index(dst) else 1, 3))
        edges.append({"from": src, "to": dst, "op": "conv", "at": at, "delay": delay, "name": f"e{i}"})
    inputs = {draw(st.sampled_from(areas)): draw(st.sampled_from(["once", "every", [0, 3], [2]]))}
    return {"cortexgraph": 1, "name": "random", "input": {"channels": 4, "size": 8},
            "areas": {a: {"channels": 4, "size": 8} for a in areas}, "inputs": inputs, "steps": 7,
            "edges": edges, "readout": {"area": areas[0], "step": 7, "head": {"classes": 2}}}


@settings(max_examples=150, deadline=None)
@given(random_specs())
def test_arrival_matches_shortest_paths_in_the_time_expanded_graph(data):
    spec_ = load_spec(data)
    edges = lower(spec_)  # not analyze: a random spec may read out before signal arrives
    timeline = build_timeline(edges, list(spec_.areas), spec_.steps)
    assert timeline.arrival == shortest_paths(data)
