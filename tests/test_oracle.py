"""Compiled models against the oracle (tests/oracle.py), an unroller written from the spec document alone.

Hypothesis draws small specs that mix what the semantics have to get right
together: delays (zero delay too), `at` rules (every step, single steps, lists that run past the
spec's steps, ranges), inputs at step 0, at every step or late, edges straight
from the input, share groups, per-step weights, ties, every norm policy, a
horizon with `beyond`, readouts that only hold their value, several readout
steps, and the head's pools and norms. Each model loads the oracle's weights by
name (strict: the names are part of the contract) and must give the oracle's
outputs, in eval and in train mode, for `model(x)`, `readout="all"`,
`return_states=True` and other step counts, and the same gradients and
running statistics.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from cortexgraph import build
from tests.oracle import INPUT, Oracle, Refused, steps_of

TOLERANCE = {"rtol": 1e-9, "atol": 1e-10}  # float64: only the order of sums differs


def _ops(source: tuple[int, int], target: tuple[int, int]) -> st.SearchStrategy:
    """Ops that map an area of (channels, size) `source` onto `target`."""
    (cin, sin), (cout, sout) = source, target
    if sout > sin:
        return st.sampled_from([{"up": {"mode": m}} for m in ("nearest", "bilinear", "transpose")]
                               + [{"up": {"kernel": 1}}])
    ops = [{"conv": {"kernel": 1}}, {"conv": {"bias": True}}, "residual", "basic"]
    if sout < sin:
        ops += ["down"] + ([{"pool": {"kind": "max"}}, {"pool": {"kind": "avg"}}] if cin == cout else [])
    elif cin == cout:
        ops += ["identity", "conv"]
    return st.sampled_from(ops)


def _rules(steps: int) -> st.SearchStrategy:
    """`at` rules for an edge of a spec with `steps` steps (some listing steps only longer runs reach)."""
    return st.one_of(
        st.just("all"),
        st.integers(1, steps),
        st.lists(st.integers(1, steps + 1), min_size=1, max_size=3, unique=True).map(sorted),
        st.integers(1, steps).map(lambda first: {"from": first}),
        st.tuples(st.integers(1, steps), st.integers(0, 2), st.integers(1, 2)).map(
            lambda r: {"from": r[0], "to": r[0] + r[1], "every": r[2]}),
    )


@st.composite
def _share(draw: st.DrawFn, rule: object, steps: int, first: int = 1) -> object:
    fires = steps_of(rule, steps, first)
    choices = ["time", "none"] + (["groups"] if fires else [])
    share = draw(st.sampled_from(choices))
    if share != "groups":
        return share
    # Each step joins one of up to three groups: groups may interleave ([[2, 3], [1, 4]]).
    labels = draw(st.lists(st.integers(0, 2), min_size=len(fires), max_size=len(fires)))
    groups = {}
    for step, label in zip(fires, labels):
        groups.setdefault(label, []).append(step)
    return draw(st.permutations(list(groups.values())))  # written in any order


@st.composite
def specs(draw: st.DrawFn) -> dict:
    """A small valid spec document in the edge-list notation."""
    steps = draw(st.integers(1, 4))
    names = ["A", "B", "C"][:draw(st.integers(1, 3))]
    sizes = [4]
    for _ in names[1:]:
        sizes.append(draw(st.sampled_from([sizes[-1], sizes[-1] // 2])))
    shapes = {n: (draw(st.sampled_from([2, 3])), s) for n, s in zip(names, sizes)}
    doc: dict = {"cortexgraph": 1, "name": "drawn", "steps": steps,
                 "areas": {n: {"channels": c, "size": s} for n, (c, s) in shapes.items()}}
    for area in doc["areas"].values():  # cells (docs/semantics.md, 'Cells'), sum most often
        cell = draw(st.sampled_from(["sum", "sum", "sum", "act", "conv", "leaky", "gru", "lstm", "rgc"]))
        if cell != "sum":
            area["cell"] = {"act": {"norm": draw(st.sampled_from(["per_step", "shared", "none"]))},
                            "conv": {"kernel": 1, "bias": True}, "gru": {"kernel": 1},
                            "leaky": {"tau": 3.0, "learn_tau": draw(st.booleans()), "per_channel": True},
                            "lstm": {"kernel": 1}, "rgc": {"kernel": 1}}[cell]
            area["cell"] = {cell: area["cell"]}
        if draw(st.integers(0, 3)) == 0:
            area["modulation"] = "tanh"
    if draw(st.integers(0, 2)) == 0:
        doc["silence"] = draw(st.sampled_from(["zeros", "computed"]))
    if draw(st.booleans()):
        doc["input"] = {"channels": 1, "size": 4}
        doc["prenet"] = [{"conv": {"out": shapes["A"][0]}}]
    else:
        doc["input"] = {"channels": shapes["A"][0], "size": 4}
    shapes[INPUT] = shapes["A"]
    doc["inputs"] = {"A": draw(st.one_of(st.sampled_from(["once", "every", {"from": 0, "every": 2}]),
                                         st.integers(1, steps), st.just([0, steps])))}
    pairs = list(zip(names, names[1:]))  # a chain, so every area is reachable
    pairs += draw(st.lists(st.sampled_from([(a, b) for a in names for b in names] + [(INPUT, names[-1])]),
                           max_size=3))
    edges, seen = [], {}
    for source, target in pairs:
        edge = {"from": source, "to": target, "op": draw(_ops(shapes[source], shapes[target]))}
        seen[(source, target)] = seen.get((source, target), 0) + 1
        if seen[(source, target)] > 1 or source == INPUT:  # (inputs.A is edge input->A)
            edge["name"] = f"{source}->{target}+{seen[(source, target)]}"
        if source == INPUT and draw(st.booleans()):
            edge["delay"] = draw(st.integers(1, 2))  # the frame shown earlier, from step `delay`
        if source != INPUT:
            edge["at"] = draw(_rules(steps))
            forward = names.index(source) < names.index(target)  # zero delay only down the chain: no cycle
            edge["delay"] = draw(st.sampled_from([0, 1, 1, 2, 3] if forward else [1, 1, 2, 3]))
        if source != INPUT and seen[(source, target)] == 1 and (source, target) not in zip(names, names[1:]):
            edge["modulating"] = draw(st.integers(0, 2)) == 0  # never the chain's: every area keeps a drive
        if source != INPUT and draw(st.integers(0, 3)) == 0:
            edge["activation"] = "none"  # a signed contribution
        first = 0 if edge.get("delay") == 0 or doc.get("silence") == "computed" else 1  # (steps_of's `first`)
        edge["share"] = draw(_share(edge.get("at", "all") if source != INPUT else [], steps, first))
        edge["norm"] = draw(st.sampled_from(["per_step", "shared", "none"]))
        edges.append(edge)
    _tie_some(draw, edges, shapes)
    doc["edges"] = [{k: v for k, v in e.items() if v != "time" or k != "share"} for e in edges]
    doc["defaults"] = {"activation": draw(st.sampled_from(["relu", "tanh"]))}
    if steps > 1 and draw(st.booleans()):
        doc["defaults"] |= {"horizon": draw(st.integers(1, steps - 1)), "beyond": "reuse_last"}
    elif draw(st.booleans()):
        doc["defaults"]["beyond"] = "reuse_last"
    doc["checkpoint"] = draw(st.sampled_from([False, False, False, True]))
    # Read out an area signal reaches, at steps it has a value.
    doc["readout"] = {"area": "A", "head": {"classes": 3}}
    versions = Oracle(doc).timeline(steps).versions
    reached = [n for n in names if versions[n]]
    if not reached:
        doc["inputs"] = {"A": "once"}
        reached = ["A"]
    area = draw(st.sampled_from(reached))
    first = versions[area][0] if versions[area] else 0
    head = {"classes": 3, "pool": draw(st.sampled_from(["avg", "max", "none"]))}
    norm = draw(st.sampled_from([None, "per_step", "shared", "none"]))
    if norm:
        head["norm"] = norm
    doc["readout"] = {"area": area, "head": head}
    if len(reached) > 1 and draw(st.integers(0, 3)) == 0:  # several areas, pooled and concatenated
        areas = draw(st.lists(st.sampled_from(reached), min_size=2, max_size=len(reached), unique=True))
        doc["readout"]["area"] = areas
        first = max(versions[a][0] for a in areas)
    when = draw(st.sampled_from(["default", "one", "several"]))
    if when == "one":
        doc["readout"]["step"] = draw(st.integers(first, steps))
    elif when == "several" and first < steps:
        doc["readout"]["step"] = sorted(draw(st.lists(st.integers(first, steps), min_size=2, max_size=2,
                                                      unique=True)))
    return doc


def _tie_some(draw: st.DrawFn, edges: list[dict], shapes: dict) -> None:
    """Tie some edges to an earlier edge of the same op, shapes and weights, both shared across time."""
    for i, edge in enumerate(edges):
        if edge["share"] != "time" or edge["op"] in ("identity",) or "pool" in str(edge["op"]):
            continue
        owners = [e for e in edges[:i] if e["share"] == "time" and "tie" not in e and e["op"] == edge["op"]
                  and (shapes[e["from"]], shapes[e["to"]]) == (shapes[edge["from"]], shapes[edge["to"]])]
        if owners and draw(st.booleans()):
            owner = owners[0]
            edge["tie"] = owner.get("name", f"{owner['from']}->{owner['to']}")


def _same(got, expected, what: str) -> None:
    if isinstance(expected, dict):
        assert set(got) == set(expected), f"{what}: keys {sorted(got)} != {sorted(expected)}"
        for key in expected:
            _same(got[key], expected[key], f"{what}[{key}]")
    elif isinstance(expected, tuple):
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _same(g, e, f"{what}[{i}]")
    else:
        torch.testing.assert_close(got, expected, **TOLERANCE, msg=lambda m: f"{what}: {m}")


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, dict):
        return [t for key in sorted(out, key=str) for t in _tensors(out[key])]
    if isinstance(out, tuple):
        return [t for part in out for t in _tensors(part)]
    return [out]


def _loss(out) -> torch.Tensor:
    """A loss that gives every value its own gradient (a plain sum would give BatchNorm's input none)."""
    return sum((t * torch.linspace(-1, 2, t.numel(), dtype=t.dtype).view_as(t)).square().sum()
               for t in _tensors(out))


def _calls(doc: dict) -> list[dict]:
    steps = doc["steps"]
    calls = [{}, {"readout": "all"}, {"return_states": True}, {"steps": steps + 1},
             {"steps": steps + 2, "readout": "all"}]
    return calls + ([{"steps": steps - 1, "return_states": True}] if steps > 1 else [])


def check_against_oracle(doc: dict) -> None:
    oracle = Oracle(doc)
    model = build(doc).double()
    model.load_state_dict(oracle.state_dict())  # strict: every name is as docs/semantics.md says
    x = torch.randn(2, doc["input"]["channels"], 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        for kwargs in _calls(doc):
            try:
                expected = oracle.run(x, **kwargs)
            except Refused:
                with pytest.raises(ValueError):
                    model(x, **kwargs)
                continue
            _same(model(x, **kwargs), expected, f"eval {kwargs}")
            if kwargs == {"return_states": True}:  # features: a third of the values, each against the oracle's
                asked = sorted(expected[1])[::3]
                _same(model.features(x, asked), {key: expected[1][key] for key in asked}, "features")
    model.train()
    weights = oracle.parameters()
    losses = _losses(model, oracle, x, training=True)
    kept = {name: t.clone() for name, t in oracle.tensors.items()}  # running statistics after training passes
    if oracle.ill_conditioned:
        # A batch norm in training saw a constant map (a cell's drive of zeros under silence: zeros): its
        # backward pass multiplies by 1/sqrt(eps), and gradients that cancel to 0 in exact arithmetic come out
        # as rounding noise amplified once per such norm. Gradients are compared in eval mode instead, where
        # every norm is affine (outputs and running statistics were compared in training above).
        model.eval()
        for w in weights.values():
            w.grad = None
        model.zero_grad(set_to_none=True)
        losses = _losses(model, oracle, x, training=False)
    for loss in losses:
        loss.backward()
    scale = max([1.0] + [float(w.grad.abs().max()) for w in weights.values() if w.grad is not None])
    for name, param in model.named_parameters():
        if weights[name].grad is None:
            assert param.grad is None or not param.grad.any(), f"{name}: a gradient the oracle has not"
        else:
            # A bias just before a norm has a gradient that is 0 only in exact arithmetic: gradients agree to
            # 1e-8 of the largest (float64); semantic errors are of order 1.
            torch.testing.assert_close(param.grad, weights[name].grad, rtol=1e-7, atol=1e-8 * scale,
                                       msg=lambda m, name=name: f"gradient of {name}: {m}")
    state = model.state_dict()
    for name, buffer in model.named_buffers():
        if name not in state:
            continue  # not part of the model's state (a leaky cell's fixed time constant, from the spec)
        _same(buffer, kept[name], f"buffer {name}")


def _losses(model, oracle: Oracle, x: torch.Tensor, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's and the oracle's losses over three call forms, their outputs compared on the way."""
    loss, expected_loss = 0, 0
    for kwargs in ({}, {"readout": "all"}, {"return_states": True}):
        got, expected = model(x, **kwargs), oracle.run(x, training=training, **kwargs)
        _same(got, expected, f"{'train' if training else 'eval'} {kwargs}")
        loss, expected_loss = loss + _loss(got), expected_loss + _loss(expected)
    return loss, expected_loss


EXAMPLES = [  # the shapes a hand-written loop gets wrong first, kept whatever hypothesis draws
    # late input, a delayed feedback edge, a readout that only holds its value
    {"cortexgraph": 1, "name": "late", "steps": 4, "input": {"channels": 2, "size": 4},
     "areas": {"A": {"channels": 2, "size": 4}, "B": {"channels": 3, "size": 2}}, "inputs": {"A": 2},
     "edges": [{"from": "A", "to": "B", "op": "down", "at": [3]},
               {"from": "B", "to": "A", "op": {"up": {"mode": "bilinear"}}, "delay": 2, "share": "none"}],
     "readout": {"area": "B", "step": [3, 4], "head": {"classes": 3, "pool": "max", "norm": "per_step"}}},
    # interleaved share groups (past the spec's steps the group that ran last is reused), a tie
    {"cortexgraph": 1, "name": "shared", "steps": 4, "input": {"channels": 1, "size": 4},
     "prenet": [{"conv": {"out": 2}}], "areas": {"A": {"channels": 2, "size": 4}}, "inputs": {"A": "every"},
     "defaults": {"beyond": "reuse_last"},
     "edges": [{"from": "A", "to": "A", "op": "residual", "share": [[2, 3], [1, 4]]},
               {"from": "A", "to": "A", "name": "A->A+2", "op": "basic", "at": {"from": 2, "every": 2}},
               {"from": "A", "to": "A", "name": "A->A+3", "op": "basic", "tie": "A->A+2", "norm": "shared"}],
     "readout": {"area": "A", "head": {"classes": 3, "pool": "none"}}},
    # every pool, into an area read out at once and later
    {"cortexgraph": 1, "name": "pools", "steps": 2, "input": {"channels": 2, "size": 4},
     "areas": {"A": {"channels": 2, "size": 4}, "B": {"channels": 2, "size": 2}}, "inputs": {"A": "once"},
     "edges": [{"from": "A", "to": "B", "op": "pool", "at": 1},
               {"from": "A", "to": "B", "name": "avg", "op": {"pool": {"kind": "avg"}}, "at": 2},
               {"from": "B", "to": "B", "op": "conv", "at": 2}],
     "readout": {"area": "B", "step": [1, 2], "head": {"classes": 3, "pool": "max"}}},
    # a sweep within each step (zero delay, from step 0), with lateral and top-down edges of delay 1
    {"cortexgraph": 1, "name": "sweep", "steps": 2, "input": {"channels": 2, "size": 4},
     "areas": {"A": {"channels": 2, "size": 4}, "B": {"channels": 3, "size": 2}, "C": {"channels": 2, "size": 2}},
     "inputs": {"A": "every"},
     "edges": [{"from": "B", "to": "C", "op": "conv", "delay": 0, "share": "none"},
               {"from": "A", "to": "B", "op": "down", "delay": 0},
               {"from": "B", "to": "B", "op": "conv"}, {"from": "C", "to": "A", "op": "up", "at": [2]}],
     "readout": {"area": "C", "step": [0, 1, 2], "head": {"classes": 3}}},
    # under silence: zeros, batch norms in training see constant maps for three steps before the input comes
    # (their backward passes amplify rounding: see check_against_oracle)
    {"cortexgraph": 1, "name": "constant", "steps": 3, "silence": "zeros", "input": {"channels": 2, "size": 4},
     "areas": {"A": {"channels": 2, "size": 4, "cell": {"act": {"norm": "per_step"}}, "modulation": "tanh"}},
     "inputs": {"A": 3}, "defaults": {"activation": "relu"},
     "edges": [{"from": "A", "to": "A", "op": {"conv": {"kernel": 1}}, "activation": "none"}],
     "readout": {"area": "A", "head": {"classes": 3, "pool": "max"}}},
    # two readout areas, pooled and concatenated, one of them reached late
    {"cortexgraph": 1, "name": "two", "steps": 3, "input": {"channels": 2, "size": 4},
     "areas": {"A": {"channels": 2, "size": 4}, "B": {"channels": 3, "size": 2}}, "inputs": {"A": "every"},
     "edges": [{"from": "A", "to": "B", "op": "down", "at": [2, 3]}, {"from": "A", "to": "A", "op": "conv"}],
     "readout": {"area": ["B", "A"], "step": [2, 3], "head": {"classes": 3, "norm": "per_step"}}},
    # silence: computed: at step 0 B's edges run on the zeros A held before (relu of their biases), as
    # PyTorchTNN runs each area's pre-memory conv on zeros; C's feedback edge from B reads B's zeros too
    {"cortexgraph": 1, "name": "computed", "steps": 3, "silence": "computed", "input": {"channels": 2, "size": 4},
     "areas": {"A": {"channels": 2, "size": 4}, "B": {"channels": 3, "size": 4, "cell": {"gru": {"kernel": 1}}},
               "C": {"channels": 2, "size": 4}},
     "inputs": {"A": "every"},
     "edges": [{"from": "A", "to": "B", "op": {"conv": {"kernel": 1, "bias": True}}, "norm": "none"},
               {"from": "B", "to": "C", "op": {"conv": {"kernel": 1, "bias": True}}, "norm": "none", "delay": 2},
               {"from": "C", "to": "A", "op": {"conv": {"kernel": 1, "bias": True}}, "norm": "none"}],
     "readout": {"area": "C", "step": [0, 3], "head": {"classes": 3}}},
]


@given(specs())
@example(EXAMPLES[-1])
@example(EXAMPLES[0])
@example(EXAMPLES[1])
@example(EXAMPLES[2])
@example(EXAMPLES[3])
@example(EXAMPLES[4])
@example(EXAMPLES[5])
def test_models_compute_what_the_oracle_reads_in_their_spec(doc):
    check_against_oracle(doc)
