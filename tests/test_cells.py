"""Cells, modulating and linear edges, and the silence policy, against loops written from their equations
(docs/semantics.md, 'Cells').

Each reference below reads the model's weights by name (the names are part of the contract) and computes
with torch.nn.functional only, in float64; outputs at every step, every area's states, gradients and
running statistics must agree.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from cortexgraph import SpecError, build, compile, register_op
from cortexgraph.ops.cell_registry import register_cell, unregister_cell
from cortexgraph.ops.registry import unregister_op

STEPS = 3
TOL = {"rtol": 1e-9, "atol": 1e-10}


def _spec(cell: str, silence: str = "absent", extra: str = "", modulation: str = "identity") -> str:
    """A feeds B (delay 1, conv-BN-ReLU down); B has `cell` and a linear lateral edge (it can inhibit)."""
    return f"""
cortexgraph: 1
name: cells
input: {{channels: 2, size: 4}}
areas:
  A: {{channels: 2, size: 4}}
  B: {{channels: 3, size: 2, cell: {cell}, modulation: {modulation}}}
inputs: {{A: every}}
steps: {STEPS}
silence: {silence}
edges:
  - {{from: A, to: B, op: down}}
  - {{from: B, to: B, op: conv, activation: none, norm: none}}
{extra}
readout: {{area: B, head: {{classes: 3}}}}
"""


class Reference:
    """The spec above, by hand: `w` are the model's tensors by name (copies, with their own gradients)."""

    def __init__(self, model, cell: str, params: dict, zeros: bool, training: bool):
        self.w = {k: v.detach().clone().requires_grad_(v.is_floating_point() and "running" not in k
                                                       and "num_batches" not in k)
                  for k, v in model.state_dict().items()}
        for name, value in model.named_parameters():  # not in the state dict where tied or registered only
            self.w.setdefault(name, value.detach().clone().requires_grad_(True))
        self.cell, self.params, self.zeros, self.training = cell, params, zeros, training

    def bn(self, prefix: str, x):
        w = self.w
        return F.batch_norm(x, w[f"{prefix}.running_mean"], w[f"{prefix}.running_var"], w[f"{prefix}.weight"],
                            w[f"{prefix}.bias"], training=self.training, momentum=0.1, eps=1e-5)

    def down(self, a, t):
        x = F.conv2d(a, self.w["edges.A->B.conv.weight"], stride=2, padding=1)
        return F.relu(self.bn(f"edges.A->B.norm.t{t}", x))

    def lateral(self, b):
        return F.conv2d(b, self.w["edges.B->B.conv.weight"], padding=1)

    def apply_cell(self, d, h, c, t):
        w, p = self.w, self.params
        if self.cell == "act":
            return F.relu(self.bn(f"cells.B.norm.t{t}", d)), None
        if self.cell == "conv":
            return F.relu(self.bn(f"cells.B.norm.t{t}", F.conv2d(d, w["cells.B.conv.weight"], padding=1))), None
        h = torch.zeros_like(d) if h is None else h
        if self.cell == "leaky":
            tau = p["dt"] + F.softplus(w["cells.B.raw_tau"]) if p.get("learn_tau") else p["tau"]
            a = p["dt"] / tau
            return (1 - a) * h + a * F.relu(d), None
        if self.cell == "gru":
            def conv(name, x):
                return F.conv2d(x, w[f"cells.B.{name}.weight"], w[f"cells.B.{name}.bias"], padding=1)
            z = torch.sigmoid(conv("update", torch.cat([d, h], 1)))
            r = torch.sigmoid(conv("reset", torch.cat([d, h], 1)))
            n = torch.tanh(conv("candidate", torch.cat([d, r * h], 1)))
            return (1 - z) * n + z * h, None
        c = torch.zeros_like(d) if c is None else c
        if self.cell == "rgc":
            def conv(name, x):
                return F.conv2d(x, w[f"cells.B.{name}.weight"], w[f"cells.B.{name}.bias"], padding=1)
            new_c = F.elu((1 - torch.sigmoid(conv("memory_tau", c))) * c
                          + (1 - torch.sigmoid(conv("memory_gate", h))) * conv("input_to_memory", d))
            new_h = F.elu((1 - torch.sigmoid(conv("value_tau", h))) * h
                          + (1 - torch.sigmoid(conv("value_gate", c))) * d)
            return new_h, new_c
        assert self.cell == "lstm"
        i, f, g, o = F.conv2d(torch.cat([d, h], 1), w["cells.B.gates.weight"], w["cells.B.gates.bias"],
                              padding=1).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def run(self, x, gain=None):
        """{step: logits}, {(area, step): value}; `gain(t)`: the drive's factor 1 + g(M) at step t, if any."""
        a = x  # A: the image at every step (identity input, no pre-net)
        states, b, c = {}, None, None
        for t in range(STEPS + 1):
            states[("A", t)] = a
            drives = []
            if t >= 1:
                drives.append(self.down(a, t))  # A's value of step t - 1: the same image
            if b is not None:
                drives.append(self.lateral(b))
            if not drives and not (self.zeros and t == 0):
                continue  # B is silent: no update
            d = sum(drives[1:], drives[0]) if drives else torch.zeros(x.shape[0], 3, 2, 2, dtype=x.dtype)
            if gain is not None and drives:
                d = d * gain(t)
            b, c = self.apply_cell(d, b, c, t)
            states[("B", t)] = b
        logits = {t: F.linear(v.mean((2, 3)), self.w["head.fc.weight"], self.w["head.fc.bias"])
                  for (area, t), v in states.items() if area == "B"}
        return logits, states


CELLS = [("act", {}), ("conv", {}), ("{leaky: {tau: 3.0, dt: 0.5}}", {"tau": 3.0, "dt": 0.5}),
         ("{leaky: {tau: 2.5, learn_tau: true, per_channel: true}}", {"tau": 2.5, "dt": 1.0, "learn_tau": True}),
         ("gru", {}), ("lstm", {}), ("rgc", {})]


def _compare(model, reference: Reference, x, gain=None):
    got, states = model(x, readout="all", return_states=True)
    want, want_states = reference.run(x, gain)
    assert set(got) == set(want) and set(states) == set(want_states)
    for key in want_states:
        torch.testing.assert_close(states[key], want_states[key], **TOL)
    for t in want:
        torch.testing.assert_close(got[t], want[t], **TOL)
    loss = sum((v ** 2).sum() for v in got.values())
    want_loss = sum((v ** 2).sum() for v in want.values())
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    want_grads = torch.autograd.grad(want_loss, [reference.w[n] for n in params], allow_unused=True)
    for name, g, wg in zip(params, grads, want_grads):
        if wg is None:
            assert g is None or not g.any(), name
        else:
            torch.testing.assert_close(g, wg, **TOL, msg=f"gradient of {name}")
    for name, buffer in model.named_buffers():
        if name in reference.w and "num_batches" not in name:  # (F.batch_norm does not count batches)
            torch.testing.assert_close(buffer, reference.w[name], **TOL, msg=f"buffer {name}")


@pytest.mark.parametrize("silence", ["absent", "zeros"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cell, params", CELLS, ids=["act", "conv", "leaky", "leaky-learned", "gru", "lstm", "rgc"])
def test_each_cell_computes_its_equations(cell, params, silence, training):
    torch.manual_seed(0)
    model = build(_spec(cell, silence)).double().train(training)
    for m in model.modules():  # non-trivial norms and biases, so that a misplaced one shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
        elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
            m.bias.data.uniform_(-0.5, 0.5)
    reference = Reference(model, cell.split(":")[0].strip("{ "), params, silence == "zeros", training)
    _compare(model, reference, torch.randn(4, 2, 4, 4, dtype=torch.float64))


def test_a_cell_runs_at_every_step_from_arrival_and_from_step_0_under_zeros():
    absent, zeros = compile(_spec("gru")), compile(_spec("gru", "zeros"))
    assert [u.step for u in absent.updates if u.area == "B"] == [1, 2, 3]
    assert [u.step for u in zeros.updates if u.area == "B"] == [0, 1, 2, 3]
    assert zeros.arrival == absent.arrival == {"A": 0, "B": 1}  # signal arrives when it arrives
    first = next(u for u in zeros.updates if u.area == "B")
    assert (first.calls, first.prev) == ((), None)  # a drive of zeros, a state of zeros


def test_sum_areas_are_the_same_under_either_silence_policy():
    torch.manual_seed(0)
    absent = build(_spec("sum"))
    zeros = build(_spec("sum", "zeros"))
    zeros.load_state_dict(absent.state_dict())
    x = torch.randn(2, 2, 4, 4)
    torch.testing.assert_close(zeros(x, readout="all"), absent(x, readout="all"))
    assert [u.step for u in compile(_spec("sum", "zeros")).updates if u.area == "B"] == [1, 2, 3]


def test_a_stateful_cell_keeps_every_earlier_value_it_reads():
    # No lateral edge: what B's value at step 3 needs is its own earlier values (the cell's state) only.
    text = _spec("{leaky: {tau: 4}}").replace("  - {from: B, to: B, op: conv, activation: none, norm: none}\n", "")
    plan = compile(text)
    b = [u for u in plan.updates if u.area == "B"]
    assert [(u.step, u.prev) for u in b] == [(1, None), (2, 1), (3, 2)]
    summed = compile(text.replace("cell: {leaky: {tau: 4}}", "cell: act"))  # no state: only step 3 is needed
    assert [u.step for u in summed.updates if u.area == "B"] == [3]


@pytest.mark.parametrize("modulation", ["identity", "tanh"])
def test_a_modulating_edge_scales_the_drive(modulation):
    extra = "  - {from: A, to: B, op: down, name: gain, modulating: true, activation: none, norm: none}"
    torch.manual_seed(0)
    model = build(_spec("act", extra=extra, modulation=modulation)).double().train()
    reference = Reference(model, "act", {}, False, True)
    g = torch.tanh if modulation == "tanh" else (lambda m: m)

    def gain(t):
        m = F.conv2d(x, reference.w["edges.gain.conv.weight"], stride=2, padding=1)
        return 1 + g(m)

    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    _compare(model, reference, x, gain)
    assert "(1 + g(gain(input@0)))" not in str(model.plan)  # the gain reads A, not the input
    assert "* (1 + g(gain(A@0)))" in str(model.plan)


def test_linear_edges_can_inhibit():
    torch.manual_seed(0)
    model = build(_spec("sum")).eval()
    _, states = model(torch.randn(8, 2, 4, 4), return_states=True)
    lateral = model.weight_set("edges.B->B")(states[("B", 1)], 2)
    assert (lateral < 0).any() and (lateral > 0).any()
    assert not hasattr(model.weight_set("edges.B->B"), "norm") or isinstance(
        model.weight_set("edges.B->B").act, torch.nn.Identity)


def test_cell_sizes_are_known_before_building_and_match_the_module():
    for cell, _ in CELLS:
        plan = compile(_spec(cell))
        with torch.device("meta"):
            model = build(_spec(cell))
        assert plan.size.parameters == sum(p.numel() for p in model.parameters()), cell
        assert plan.parts["B"].parameters == sum(p.numel() for n, p in model.named_parameters()
                                                 if n.startswith(("cells.B", "edges.A->B", "edges.B->B"))), cell


def test_checkpointing_a_model_with_cells_changes_nothing():
    torch.manual_seed(0)
    model = build(_spec("lstm", "zeros", "  - {from: B, to: A, op: up, delay: 2, modulating: true}")).train()
    x = torch.randn(3, 2, 4, 4)
    plain = model(x)
    grads = torch.autograd.grad(plain.sum(), list(model.parameters()), allow_unused=True)
    model.checkpoint = True
    again = model(x)
    grads2 = torch.autograd.grad(again.sum(), list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(again, plain)
    for g, g2 in zip(grads, grads2):
        assert (g is None) == (g2 is None)
        if g is not None:
            torch.testing.assert_close(g2, g)


def test_the_compile_summary_counts_cells_and_marks_modulating_edges():
    from cortexgraph.summary import format_summary, summarize

    extra = "  - {from: A, to: B, op: down, name: gain, modulating: true}"
    text = format_summary(summarize(build(_spec("gru", extra=extra))))
    assert "step   1: B <- gru(A->B, *gain)" in text and "step   2: B <- gru(A->B, B->B, *gain)" in text
    assert "(*: a modulating edge" in text
    plain = summarize(build(_spec("sum", extra=extra)))
    gated = summarize(build(_spec("gru", extra=extra)))
    assert gated["areas"]["B"]["flops"][2] > plain["areas"]["B"]["flops"][2]


def test_the_rolled_drawing_shows_cells_and_marks_edges():
    from cortexgraph import draw

    extra = "  - {from: A, to: B, op: down, name: gain, modulating: true}"
    dot = draw(_spec("{leaky: {tau: 4}}", extra=extra, modulation="tanh")).source
    assert "cell: leaky(tau=4.0), gain 1 + tanh(M)" in dot
    assert "arrowhead=odot" in dot and "arrowhead=tee" in dot
    assert "-o  modulating" in dot and "-|  linear" in dot


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell, message", [
    ("{leaky: {tau: 1.0}}", "areas.B.cell.leaky: tau (1) must be above dt (1): a leaky area with a <= 1 integrates"),
    ("gruu", "areas.B.cell: unknown cell 'gruu' (did you mean 'gru'?)"),
    ("{gru: {kernel: 2}}", "areas.B.cell.gru.kernel: the kernel must be an odd size"),
    ("{act: {norm: sometimes}}", "areas.B.cell.act.norm: 'sometimes' is not a norm; expected per_step, shared"),
    ("{act: {norm: {kind: grup}}}", "areas.B.cell.act.norm: norm kind: 'grup' is not allowed; expected 'batch', "
                                    "'group', 'layer', 'instance' or 'none' (did you mean 'group'?)"),
    ("{act: {norm: {kind: group, groups: 2}}}", "areas.B.cell: a group norm of 2 groups cannot split 3 channels "
                                                "(choose groups that divide 3)"),
    ("{act: {lrn: {size: 0}}}", "areas.B.cell.act.lrn.size: must be > 0, got 0"),
    ("{act: {lrn: {beta: -1}}}", "areas.B.cell.act.lrn.beta: must be > 0.0, got -1"),
    ("{act: {lrn: {window: 5}}}", "areas.B.cell.act.lrn.window"),
])
def test_a_bad_cell_is_one_located_message(cell, message):
    with pytest.raises(SpecError) as caught:
        compile(_spec(cell))
    assert len(caught.value.errors) == 1
    assert message in str(caught.value)


def test_an_area_fed_only_by_modulating_edges_is_refused():
    text = _spec("lstm").replace("{from: A, to: B, op: down}", "{from: A, to: B, op: down, modulating: true}")
    text = text.replace("  - {from: B, to: B, op: conv, activation: none, norm: none}\n", "")
    with pytest.raises(SpecError) as caught:
        compile(text)
    assert str(caught.value).endswith(
        "edges[0].modulating: area 'B' is fed only by modulating edges, so its lstm cell runs on a drive of 0 "
        "(add a driving edge into it, or drop 'modulating' from one of its edges)")


# --- cells from Python -----------------------------------------------------------------------------------


class Doubling(torch.nn.Module):
    """h' = 2 D + h: a cell with one learned scale, registered without a size function."""

    def __init__(self, ctx):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.full((ctx.channels, 1, 1), 2.0))

    def forward(self, drive, h, memory, step):
        return self.scale * drive + (0 if h is None else h), None


def test_register_cell_adds_a_cell_that_specs_name():
    import cortexgraph

    assert cortexgraph.register_cell is register_cell  # the package's, as register_op is (docs/spec.md)
    cortexgraph.register_cell("doubling", Doubling, reads_state=True)
    try:
        plan = compile(_spec("doubling"))
        assert plan.parts["B"].parameters == compile(_spec("sum")).parts["B"].parameters + 3  # measured
        torch.manual_seed(0)
        model = build(_spec("doubling")).eval()
        plain = copy.deepcopy(build(_spec("sum")).eval())
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("cells.")})
        x = torch.randn(2, 2, 4, 4)
        _, got = model(x, return_states=True)
        _, sums = plain(x, return_states=True)
        torch.testing.assert_close(got[("B", 1)], 2 * sums[("B", 1)])
        with pytest.raises(ValueError, match="a cell named 'doubling' is registered already"):
            register_cell("doubling", Doubling)
    finally:
        unregister_cell("doubling")
    with pytest.raises(SpecError, match="unknown cell 'doubling'"):
        compile(_spec("doubling"))


def test_op_and_cell_names_are_checked_alike():
    with pytest.raises(ValueError, match="cell name 'Bad'"):
        register_cell("Bad", Doubling)
    register_op("twice", torch.nn.Identity)  # ops and cells live in separate registries
    try:
        with pytest.raises(SpecError, match="unknown cell 'twice'"):
            compile(_spec("twice"))
    finally:
        unregister_op("twice")


# --- compiled and exported ---------------------------------------------------------------------------


@pytest.mark.dynamo
@pytest.mark.parametrize("call", [{}, {"readout": "all"}, {"return_states": True}], ids=["final", "anytime", "states"])
def test_a_model_with_cells_compiles_with_no_graph_break(call):
    torch._dynamo.reset()
    extra = "  - {from: B, to: A, op: up, modulating: true}\n  - {from: A, to: A, op: conv, delay: 1}"
    model = build(_spec("lstm", "zeros", extra, modulation="tanh")).train()
    x = torch.randn(2, 2, 4, 4)
    expected = copy.deepcopy(model)(x, **call)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, **call), expected)


def test_a_model_with_cells_exports(tmp_path):
    from cortexgraph.export import export_program

    model = build(_spec("gru", "zeros", "  - {from: A, to: B, op: down, name: gain, modulating: true}")).eval()
    export_program(model, tmp_path / "cells.pt2")  # checked against the module after reloading
    reloaded = torch.export.load(tmp_path / "cells.pt2").module()
    x = torch.randn(2, 2, 4, 4)
    torch.testing.assert_close(reloaded(x), model(x))


def test_the_diagnosis_points_at_a_cell_that_makes_a_non_finite_value():
    from cortexgraph.diagnose import _place_of_parameter, first_nonfinite_value

    model = build(_spec("gru")).eval()
    with torch.no_grad():
        model.cells["B"].candidate.weight.fill_(float("inf"))
    place = first_nonfinite_value(model, torch.randn(2, 2, 4, 4))
    assert str(place) == "step 1, area B, its cell"
    assert str(_place_of_parameter(model, "cells.B.candidate.weight")) == \
        "area B, its cell (the gradient of cells.B.candidate.weight)"


def test_a_modulating_edge_joins_a_drive_that_arrives_within_the_step():
    # B's drive comes through a zero-delay edge, its gain through a delayed self edge: at step 1 the gain
    # must not be dropped for lack of a drive before the zero-delay edge has run (found by the oracle).
    text = _spec("sum").replace("{from: A, to: B, op: down}", "{from: A, to: B, op: down, delay: 0}")
    text = text.replace("{from: B, to: B, op: conv, activation: none, norm: none}",
                        "{from: B, to: B, op: conv, modulating: true}")
    plan = compile(text)
    assert [sorted(c.edge.name for c in u.calls) for u in plan.updates if u.area == "B"] == [
        ["A->B"], ["A->B", "B->B"], ["A->B", "B->B"], ["A->B", "B->B"]]


def test_a_cell_past_its_horizon_follows_beyond():
    from cortexgraph.plan import BeyondHorizonError

    text = _spec("act").replace("inputs: {A: every}", "inputs: {A: once}").replace(
        "{from: A, to: B, op: down}", "{from: A, to: B, op: down, at: [1]}").replace(
        "  - {from: B, to: B, op: conv, activation: none, norm: none}\n", "")
    model = build(text).eval()  # horizon = steps = 3, beyond: error; at step 4 only B's cell runs
    with pytest.raises(BeyondHorizonError, match=r"area 'B''s act cell has per-step norms up to step 3, not for "
                                                 r"step 4 \(defaults.beyond: error\)"):
        model(torch.randn(1, 2, 4, 4), steps=4)
    reuse = build(text.replace("readout:", "defaults: {beyond: reuse_last}\nreadout:")).eval()
    assert [u.cell_step for u in reuse.plan_for(steps=5, readout="all").updates if u.area == "B"] == [1, 2, 3, 3, 3]


def test_a_cell_s_activation_is_relu_whatever_the_edges_default():
    # defaults.activation is the edges' (BLT's are linear); a cell's own act is relu unless it says otherwise
    torch.manual_seed(0)
    linear_edges = _spec("act").replace("readout:", "defaults: {activation: none}\nreadout:")
    implicit, explicit = build(linear_edges), build(linear_edges.replace("cell: act", "cell: {act: {act: relu}}"))
    explicit.load_state_dict(implicit.state_dict())
    x = torch.randn(2, 2, 4, 4)
    _, states = implicit.eval()(x, return_states=True)
    torch.testing.assert_close(implicit(x), explicit.eval()(x))
    assert all(bool((v >= 0).all()) for (area, _), v in states.items() if area == "B")
    assert compile(linear_edges).area_cells["B"].nonlinearity == "relu"
    linear = compile(linear_edges.replace("cell: act", "cell: {act: {act: none}}"))
    assert linear.area_cells["B"].nonlinearity == "none"


def test_a_recurrent_loop_with_no_nonlinearity_is_warned_of():
    from cortexgraph import analyze
    from cortexgraph.spec import load_spec

    text = _spec("sum")  # B's lateral is linear and B's cell adds nothing
    assert [str(w) for w in analyze(load_spec(text)).warnings] == [
        "<text>:13:5: edges[1]: warning: the loop B -> B has no nonlinearity (its edges are linear and its areas' "
        "cells add none), so its values decay or grow geometrically with the steps (give an edge an activation, or "
        "its areas a cell with one, e.g. cell: {act: {act: relu}})"]
    for nonlinear in ("act", "gru", "{leaky: {tau: 4}}"):
        assert analyze(load_spec(_spec(nonlinear))).warnings == [], nonlinear


def test_the_compile_summary_says_what_makes_each_cell_nonlinear():
    from cortexgraph.summary import format_summary, summarize

    table = format_summary(summarize(build(_spec("gru")))).splitlines()
    assert [line.split()[:3] for line in table[2:5]] == [["shape", "cell", "params"], ["pre-net", "2x4x4", "0"],
                                                       ["A", "2x4x4", "sum"]]
    assert "gru (sigmoid, tanh)" in table[5] and "sum (linear)" in table[4]
    assert summarize(build(_spec("{act: {act: tanh}}")))["areas"]["B"]["cell"] == {"name": "act",
                                                                                  "nonlinearity": "tanh"}


@pytest.mark.parametrize("cell, edge, message", [
    ("rgc", "{from: A, to: B, op: down, into: out_gate, modulating: true, name: g}",
     "edges[2].into: edge 'g' both modulates the drive and goes into the cell's 'out_gate' (drop 'modulating' or "
     "'into')"),
    ("gru", "{from: A, to: B, op: down, into: out_gate, name: g}",
     "edges[2].into: edge 'g' goes into 'out_gate', which area 'B''s gru cell does not have (it has no input "
     "besides the drive; the rgc cell has out_gate)"),
    ("rgc", "{from: A, to: B, op: down, into: out_gate}",
     "edges[0].into: area 'B' is fed only through its cell's 'out_gate', so its rgc cell runs on a drive of 0 "
     "(add a driving edge into it)"),
])
def test_an_edge_into_a_cell_s_input_is_checked(cell, edge, message):
    text = _spec(cell, extra=f"  - {edge}")
    if "name: g" not in edge:  # the only edge into B goes into its out_gate
        text = text.replace("  - {from: A, to: B, op: down}\n", "").replace(
            "  - {from: B, to: B, op: conv, activation: none, norm: none}\n", "")
    with pytest.raises(SpecError) as caught:
        compile(text)
    assert len(caught.value.errors) == 1
    assert message in str(caught.value)


def test_an_edge_into_the_rgc_s_out_gate_adds_into_the_gate_not_the_drive():
    torch.manual_seed(0)
    gated = build(_spec("rgc", extra="  - {from: A, to: B, op: down, name: gate, into: out_gate}")).eval()
    plain = build(_spec("rgc")).eval()
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("edges.gate.")})
    x = torch.randn(2, 2, 4, 4)
    assert not torch.allclose(gated(x), plain(x))
    with torch.no_grad():  # a gate input of 0 is no gate input
        for p in gated.edges["gate"].parameters():
            p.zero_()
    torch.testing.assert_close(gated(x), plain(x))
    assert "rgc(A->B(A@1) + B->B(B@1), B@1, out_gate=gate(A@1))" in str(gated.plan_for(steps=2))


@pytest.mark.parametrize("tau, dt", [(1.5, 1.0), (3.0, 1.0), (20.0, 0.5), (800.0, 1.0), (1e5, 2.0)])
def test_a_learned_time_constant_starts_at_the_spec_s_tau(tau, dt):
    # tau = dt + softplus(raw): the raw value is chosen so that the model starts at the tau the spec gives,
    # also where softplus's inverse would overflow (tau - dt past 709)
    model = build(_spec(f"{{leaky: {{tau: {tau}, dt: {dt}, learn_tau: true, per_channel: true}}}}"))
    start = model.cells["B"].time_constant().detach().double()
    assert start.shape == (1, 3, 1, 1)
    torch.testing.assert_close(start, torch.full_like(start, tau), rtol=1e-6, atol=0)


@pytest.mark.parametrize("learned, per_channel, count", [(False, False, 0), (True, False, 1), (True, True, 3)])
def test_a_leaky_cell_holds_one_time_constant_or_one_per_channel_as_counted(learned, per_channel, count):
    """The count without building (what `compile` reports) against the built cell's parameters."""
    text = _spec(f"{{leaky: {{tau: 3, learn_tau: {str(learned).lower()}, per_channel: {str(per_channel).lower()}}}}}")
    plan = compile(text)
    held = sum(p.numel() for p in build(text).cells["B"].parameters())
    assert held == count and plan.cell_sets["B"].size.parameters == count


@pytest.mark.parametrize("norm", ["per_step", "shared", "{kind: layer}", "{kind: layer, time: shared}", "none"])
def test_a_cell_registered_without_a_count_is_measured_as_its_counted_twin(norm):
    """`act` registered again without `count`: measured on the meta device, its size (weights, and norms at each
    step, a layer norm's at every place of the area) is what the built-in's count says and what is built."""
    from cortexgraph.ops.cell_registry import ActParams
    from cortexgraph.ops.cells import ActCell

    register_cell("measured_act", ActCell, params=ActParams, reads_state=False)
    try:
        counted, measured = (compile(_spec(f"{{{name}: {{norm: {norm}}}}}")).cell_sets["B"].size
                             for name in ("act", "measured_act"))
        built = build(_spec(f"{{measured_act: {{norm: {norm}}}}}")).cells["B"]
        assert measured == counted
        assert measured.parameters == sum(p.numel() for p in built.parameters())
    finally:
        unregister_cell("measured_act")
