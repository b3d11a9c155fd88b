"""The compiled module runs the semantics of docs/semantics.md: checked against hand-written loops."""

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cortexgraph import BeyondHorizonError, InputError, build, load_spec
from cortexgraph.analysis import INPUT

from .helpers import randomize_norms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from common import Operations  # noqa: E402  (the counter benchmarks/kernels.py counts with)

ONE_STATE = """
cortexgraph: 1
name: one-state
input: {channels: 3, size: 8}
prenet: [{conv: {out: 4}}]
areas: {S: {channels: 4, size: 8}}
inputs: {S: once}
steps: STEPS
defaults: {norm: NORM}
transitions: {S: {S: OP}}
readout: {area: S, head: {classes: 3}}
"""


def one_state(op="residual", steps=4, norm="per_step"):
    return build(ONE_STATE.replace("STEPS", str(steps)).replace("NORM", norm).replace("OP", op))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_one_state_shared_residual_equals_a_hand_written_loop(train):
    """h_t = h_{t-1} + K_t(h_{t-1}), K_t = conv2(relu(bn2_t(conv1(relu(bn1_t(h)))))): one conv block, TSBN."""
    torch.manual_seed(0)
    model = one_state("residual", steps=4)
    randomize_norms(model)
    model.train(train)
    block = model.weight_set("edges.S->S")
    x = torch.randn(5, 3, 8, 8, requires_grad=True)
    h = model.prenet(x)
    for t in range(1, 5):
        k = F.relu(block.bn1._modules[f"t{t}"](h))
        k = block.conv2(F.relu(block.bn2._modules[f"t{t}"](block.conv1(k))))
        h = h + k
    expected = model.head(h)
    reference_grads = torch.autograd.grad(expected.sum(), [x, block.conv1.weight])

    model_again = copy.deepcopy(model)  # fresh running statistics, as the loop above updated them
    randomize_norms(model_again)
    model_again.train(train)
    x2 = x.detach().clone().requires_grad_(True)
    out = model_again(x2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.sum(), [x2, model_again.weight_set("edges.S->S").conv1.weight])
    for ours, ref in zip(grads, reference_grads):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_one_state_basic_block_equals_relu_of_h_plus_k():
    torch.manual_seed(0)
    model = one_state("basic", steps=3).eval()
    randomize_norms(model)
    block = model.weight_set("edges.S->S")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        h = model.prenet(x)
        for t in range(1, 4):
            k = block.bn2._modules[f"t{t}"](block.conv2(F.relu(block.bn1._modules[f"t{t}"](block.conv1(h)))))
            h = F.relu(h + k)
        torch.testing.assert_close(model(x), model.head(h))


def count(model):
    return sum(p.numel() for p in model.parameters())


def weight_count(model):
    return sum(p.numel() for n, p in model.named_parameters() if ".bn" not in n and "norm" not in n)


def test_shared_weights_do_not_grow_with_steps():
    assert count(one_state(steps=3, norm="shared")) == count(one_state(steps=30, norm="shared"))
    assert weight_count(one_state(steps=3)) == weight_count(one_state(steps=30))
    # with time-specific norms, each step adds exactly its two norms (4 channels: weight and bias)
    assert count(one_state(steps=30)) - count(one_state(steps=3)) == 27 * 2 * (2 * 4)


def test_unshared_weights_grow_by_one_block_per_step():
    shared, unshared = build(ONE_STATE.replace("STEPS", "3").replace("NORM", "per_step").replace("OP", "residual"),
                             share="none"), one_state(steps=3)
    block = 2 * (4 * 4 * 9)  # two 3x3 convs, 4 -> 4 channels
    assert count(shared) - count(unshared) == 2 * block


FRNN = """
cortexgraph: 1
name: frnn
input: {channels: 3, size: 16}
prenet: [{conv: {out: 4}}]
areas:
  V1: {channels: 4, size: 16}
  V2: {channels: 8, size: 8}
  V4: {channels: 8, size: 4}
inputs: {V1: once}
steps: 5
defaults: {horizon: HORIZON, beyond: BEYOND}
transitions:
  V1: {V1: residual, V2: down}
  V2: {V1: {op: up, delay: 2}, V2: residual, V4: down}
  V4: {V2: up, V4: residual}
readout: {area: V4, head: {classes: 3}}
"""


def frnn(horizon=5, beyond="error", **kw):
    return build(FRNN.replace("HORIZON", str(horizon)).replace("BEYOND", beyond), **kw)


def test_parameter_names_follow_spec_names_not_order():
    model = frnn()
    data = load_spec(FRNN.replace("HORIZON", "5").replace("BEYOND", "error")).to_dict()
    data["areas"] = dict(reversed(list(data["areas"].items())))
    data["transitions"] = dict(reversed(list(data["transitions"].items())))
    reordered = build(data)
    assert list(model.state_dict()) != list(reordered.state_dict())  # declared in another order...
    assert set(model.state_dict()) == set(reordered.state_dict())  # ...the same names
    reordered.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(model.eval()(x), reordered.eval()(x))


def test_renaming_one_area_renames_only_its_own_edges():
    names = set(frnn().state_dict())
    renamed = set(build(FRNN.replace("HORIZON", "5").replace("BEYOND", "error").replace("V4", "IT")).state_dict())
    assert {n for n in names if "V4" not in n} == {n for n in renamed if "IT" not in n}
    assert "edges.V1->V2.norm.t1.weight" in names and "edges.V2->V2.bn1.t2.weight" in names


def test_wrong_inputs_name_what_the_spec_expects():
    model = frnn()
    with pytest.raises(InputError, match=r"frnn expects input of shape \(batch, 3, 16, 16\).*got \(2, 1, 16, 16\)"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(InputError, match=r"got \(2, 3, 32, 32\)"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(InputError, match=r"got \(3, 16, 16\)"):
        model(torch.randn(3, 16, 16))
    with pytest.raises(InputError, match="expects torch.float32 input on cpu .* got torch.float64 on cpu"):
        model(torch.randn(2, 3, 16, 16, dtype=torch.float64))
    with pytest.raises(InputError, match="got torch.float32 on meta"):
        model(torch.randn(2, 3, 16, 16, device="meta"))
    with pytest.raises(InputError, match="expects a tensor of shape"):
        model([[1.0]])


def test_beyond_the_horizon_is_an_error_by_default():
    with pytest.raises(BeyondHorizonError, match="up to step 5, not for step 6 .*beyond: error"):
        frnn()(torch.randn(1, 3, 16, 16), steps=6)


def test_beyond_the_horizon_reuses_the_last_norm_when_asked():
    model = frnn(beyond="reuse_last").eval()
    randomize_norms(model)
    plan = model.plan_for(steps=7)
    late = [c for u in plan.schedule[7] for c in u.calls]
    assert late and all(c.norm_step == 5 for c in late)
    # reusing step 5's norm at steps 6 and 7 is the same as copying it into norms of those steps
    x = torch.randn(2, 3, 16, 16)
    longer = frnn(horizon=7).eval()
    state = model.state_dict()
    for name, value in longer.state_dict().items():
        source = name.replace(".t6.", ".t5.").replace(".t7.", ".t5.")
        value.copy_(state[name] if name in state else state[source])
    torch.testing.assert_close(model(x, steps=7), longer(x, steps=7))


def test_a_short_horizon_reuses_its_last_norm_within_the_steps():
    model = frnn(horizon=2, beyond="reuse_last")
    names = set(model.state_dict())
    assert "edges.V1->V1.bn1.t2.weight" in names and "edges.V1->V1.bn1.t3.weight" not in names
    assert "edges.V2->V2.bn1.weight" in names  # runs at one step within the horizon: one norm
    # at step 5 each edge uses its last norm: V2->V4 that of step 2; V4->V4, which first computes at
    # step 3 (past the horizon), the norm of that first step
    assert {c.edge.name: c.norm_step for u in model.plan.schedule[5] for c in u.calls} == {"V2->V4": 2, "V4->V4": 3}


def test_anytime_readout_equals_separate_runs():
    model = frnn().eval()
    randomize_norms(model)
    x = torch.randn(2, 3, 16, 16)
    anytime = model(x, readout="all")
    assert list(anytime) == [2, 3, 4, 5]  # from the step signal first reaches V4
    for step, logits in anytime.items():
        torch.testing.assert_close(logits, model(x, steps=step))


def test_return_states_gives_every_area_at_every_step():
    model = frnn().eval()
    x = torch.randn(2, 3, 16, 16)
    logits, states = model(x, return_states=True)
    torch.testing.assert_close(logits, model(x))
    assert set(states) == {(a, t) for a, first in model.plan.arrival.items() for t in range(first, 6)}
    assert states[("V1", 0)].shape == (2, 4, 16, 16) and states[("V4", 5)].shape == (2, 8, 4, 4)
    torch.testing.assert_close(model.head(states[("V4", 5)]), logits)


def naive_run(model, x, steps):
    """Every edge at every step it is listed, silent sources masked to zero (as graph-to-module tools do)."""
    shapes = model.plan.shapes
    prenet = model.prenet(x)
    history = {area: [] for area in model.spec.areas}  # (step, value, has_signal)
    for area in model.spec.inputs:
        history[area].append((0, prenet, True))
    for area in history:
        if not history[area]:
            history[area].append((0, torch.zeros(x.shape[0], *shapes[area]), False))
    groups = model.plan.weight_sets
    for t in range(1, steps + 1):
        new = {}
        for edge in model.plan.edges.values():
            if edge.is_input or t not in edge.steps:
                continue
            held = [h for h in history[edge.source] if h[0] <= t - edge.delay]
            silent = (torch.zeros(x.shape[0], *shapes[edge.source]), False)
            value, signal = (held[-1][1], held[-1][2]) if held else silent
            owned = [g for g in groups.values() if g.edge == edge.name]
            group = next((g for g in owned if t in g.steps), owned[0] if owned else None)
            if group is None:
                continue  # weights never built: the edge only ever fires at silent sources
            norm_step = t if t in group.steps else group.steps[0]
            out = model.weight_set(group.path)(value, norm_step) * float(signal)
            total, any_signal = new.get(edge.target, (0, False))
            new[edge.target] = (total + out, any_signal or signal)
        for area, (value, signal) in new.items():
            if signal:
                history[area].append((t, value, True))
    return model.head(history[model.spec.readout.area][-1][1])


def test_pruning_changes_no_output():
    model = frnn().eval()
    randomize_norms(model)
    x = torch.randn(2, 3, 16, 16)
    plan = model.plan
    assert plan.calls < plan.naive_calls
    with torch.no_grad():
        torch.testing.assert_close(model(x), naive_run(model, x, 5), rtol=1e-5, atol=1e-5)


def test_plan_prunes_silent_sources_and_unread_work():
    plan = frnn().plan
    calls = {(u.step, c.edge.name) for u in plan.updates for c in u.calls}
    assert (1, "V2->V1") not in calls  # V2 is silent at step 0
    assert (2, "V2->V1") not in calls  # its delay of 2 reads step 0, still silent
    assert (5, "V1->V1") not in calls and (5, "V1->V2") not in calls  # nothing reaches V4 from them by step 5
    assert (5, "V2->V4") in calls and (5, "V4->V4") in calls
    text = str(plan)
    assert "step 5:" in text and "V4 = V2->V4(V2@4) + V4->V4(V4@4)" in text


def test_readout_at_several_steps_averages_their_logits():
    data = load_spec(FRNN.replace("HORIZON", "5").replace("BEYOND", "error")).to_dict()
    data["readout"]["step"] = [3, 5]
    model = build(data).eval()
    x = torch.randn(2, 3, 16, 16)
    every = model(x, readout="all")
    torch.testing.assert_close(model(x), (every[3] + every[5]) / 2)


def test_build_overrides():
    model = frnn(steps=4, classes=7, share="none", norm="shared")
    assert model.spec.steps == 4 and model.head.fc.out_features == 7
    assert "edges.V2->V2.t3.bn1.weight" in model.state_dict()
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 7)


def test_build_refuses_a_bad_override_with_a_located_error():
    from cortexgraph import SpecError

    with pytest.raises(SpecError, match="steps: must be > 0"):
        frnn(steps=0)


@pytest.mark.parametrize("call", [{}, {"readout": "all"}, {"steps": 4}, {"return_states": True}],
                         ids=["final", "anytime", "steps", "states"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.dynamo
def test_torch_compile_fullgraph_has_no_graph_break(train, call):
    # A fresh model: the call form's plan is made while Dynamo traces the first call.
    torch._dynamo.reset()
    model = frnn().train(train)
    x = torch.randn(2, 3, 16, 16)
    expected = copy.deepcopy(model)(x, **call)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    out = compiled(x, **call)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(compiled(x, **call), expected)  # the second call runs the compiled graph
    first = out[0] if isinstance(out, tuple) else out
    logits = torch.stack(list(first.values())) if isinstance(first, dict) else first
    logits.sum().backward()
    assert model.weight_set("edges.V2->V2").conv1.weight.grad is not None


@pytest.mark.dynamo
def test_compiled_models_share_the_default_call_forms_graph():
    """Twelve models (more than Dynamo's recompile limit of 8) compiled in one process."""
    torch._dynamo.reset()
    x = torch.randn(2, 3, 16, 16)
    for _ in range(12):
        model = frnn()
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.dynamo
def test_a_copied_model_compiles_too():
    """`_prepare` finds its model by id among the live ones: a copy (deepcopy, unpickled) is one of them."""
    import pickle

    torch._dynamo.reset()  # every model compiles its call forms other than the default: a fresh count of them
    model = frnn()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x, steps=4)
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        compiled = torch.compile(copied, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x, steps=4), expected)


@pytest.mark.dynamo
def test_plans_are_made_outside_the_traced_graph_as_torch_compiler_would_mark_them():
    from cortexgraph.model import _prepare

    def probe():
        pass

    marked = torch.compiler.assume_constant_result(probe)
    flags = {k: v for k, v in vars(marked).items() if k.startswith("_dynamo")}
    assert flags and all(getattr(_prepare, k, None) == v for k, v in flags.items())


def test_torch_export_runs_and_matches(tmp_path):
    from cortexgraph.export import export_program

    model = frnn()
    diff = export_program(model, tmp_path / "frnn.pt2")
    assert diff <= 1e-5 and (tmp_path / "frnn.pt2").stat().st_size > 0
    program = torch.export.load(tmp_path / "frnn.pt2").module()
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(program(x), model.eval()(x))


def test_input_injected_at_every_step_adds_the_prenet_output():
    text = FRNN.replace("HORIZON", "5").replace("BEYOND", "error").replace("inputs: {V1: once}", "inputs: {V1: every}")
    model = build(text).eval()
    plan = model.plan
    step1 = {u.area: u for u in plan.schedule[1]}
    assert [c.source for c in step1["V1"].calls] == ["V1", INPUT]


def test_a_model_prints_each_op_by_the_name_its_spec_wrote():  # `residual`, an alias of `preact`
    assert repr(frnn()).splitlines()[2:4] == [
        "  V1 <- input->V1  identity at 0                                      4x16x16      0",
        "  V1 <- V1->V1     residual at 1-5; weights shared, norm per step     4x16x16    368"]


def test_the_specs_own_run_is_the_plan_the_model_was_built_from():
    model = frnn()
    assert model.plan.prune == "final"
    assert model.plan_for() is model.plan and model.plan_for(steps=model.spec.steps) is model.plan
    assert model.plan_for(steps=3) is model.plan_for(steps=3) is not model.plan  # made once, on first use


def test_a_tied_edge_uses_the_same_weights_and_counts_them_once():
    text = FRNN.replace("HORIZON", "5").replace("BEYOND", "error") + \
        "edges:\n  - {from: V2, to: V4, name: extra, op: down, tie: V2->V4, at: 3}\n"
    model = build(text)
    assert model.weight_set("edges.extra").conv is model.weight_set("edges.V2->V4").conv
    assert not any(n.startswith("edges.extra.conv") for n in model.state_dict())
    assert count(model) == count(frnn()) + 2 * 8  # only the tied edge's own norm is new


def test_size_override_rescales_every_area():
    model = build("torchvision/resnet18", size=32)
    assert model.plan.shapes["S1"] == (64, 8, 8) and model.plan.shapes["S4"] == (512, 1, 1)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


def test_size_override_refuses_sizes_that_do_not_divide():
    from cortexgraph import SpecError

    with pytest.raises(SpecError, match="area S1's size 56 does not scale from input 224 to 50"):
        build("torchvision/resnet18", size=50)


def test_every_sharing_and_norm_setting_builds_the_weights_it_says():
    from .conftest import TESTS

    model = build(TESTS / "specs" / "valid" / "edge-list.yaml")
    names = set(model.state_dict())
    # share groups [[2, 3], [4, 5, 6]] with a horizon of 4: a set of weights per group, norms per step
    assert {"edges.V2->V2.t2.conv1.weight", "edges.V2->V2.t4.conv1.weight"} <= names
    assert {"edges.V2->V2.t2.bn1.t2.weight", "edges.V2->V2.t2.bn1.t3.weight", "edges.V2->V2.t4.bn1.weight"} <= names
    assert not any(n.startswith("edges.V2->V4.") and "norm" in n for n in names)  # norm: none
    assert "edges.V4->V2.norm.weight" in names  # norm: shared
    assert {"edges.V2-V4-conv.t2.conv.weight", "edges.V2-V4-conv.t4.conv.weight"} <= names  # share: none...
    assert "edges.V2-V4-conv.t5.conv.weight" not in names  # ...up to the horizon
    plan = model.plan
    calls = {(u.step, c.edge.name): c for u in plan.updates for c in u.calls}
    assert calls[(6, "V2-V4-conv")].weights.path == "edges.V2-V4-conv.t4"
    assert calls[(5, "V2->V2")].weights.path == "edges.V2->V2.t4" and calls[(5, "V2->V2")].norm_step == 4  # reuse_last
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("norm", ["per_step", "shared", "none"])
@pytest.mark.parametrize("op,target", [("residual", (4, 8, 8)), ("residual", (8, 4, 4)), ("basic", (4, 8, 8)),
                                       ("basic", (8, 4, 4)), ("bottleneck", (8, 4, 4)), ("conv", (4, 8, 8)),
                                       ("down", (8, 4, 4)), ("up", (4, 16, 16)), ("pool", (4, 4, 4)),
                                       ("identity", (4, 8, 8)), ("cornet", (4, 8, 8)), ("cornet", (8, 4, 4))])
def test_no_op_changes_its_input(op, target, norm):
    """An area's value is read by several edges: an op must never modify it in place."""
    from cortexgraph.ops.layers import OpContext
    from cortexgraph.ops.registry import lookup

    definition = lookup("transition", op)
    ctx = OpContext(definition.name, (4, 8, 8), target, definition.params(), norm_policy=norm, norm_steps=(1, 2))
    module = definition.load()(ctx).train()
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    area = x * 1  # an area's value: an intermediate tensor of the autograd graph
    before = area.detach().clone()
    out = module(area, 2)
    assert out.shape == (2, *target)
    torch.testing.assert_close(area.detach(), before)
    out.sum().backward()


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.dynamo)])
def test_activation_checkpointing_changes_no_output_gradient_or_statistic(compiled):
    """Eagerly the recomputed norms update scratch statistics; compiled, recomputation is AOTAutograd's (of a
    graph whose statistics move once, in its forward). Either way: the plain step's gradients and statistics."""
    torch.manual_seed(0)
    plain = frnn()
    randomize_norms(plain)
    saving = copy.deepcopy(plain)
    saving.checkpoint = True
    x = torch.randn(4, 3, 16, 16)
    runs = (saving, torch.compile(saving, backend="aot_eager", fullgraph=True) if compiled else saving)
    for model, run in ((plain, plain), runs):
        model.train()
        run(x).square().sum().backward()
    for (name, p), q in zip(plain.named_parameters(), saving.parameters()):
        assert (p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad), name
    for (name, a), b in zip(plain.named_buffers(), saving.buffers()):  # statistics moved once, not twice
        assert torch.equal(a, b), name


def test_checkpointing_keeps_the_statistics_of_norms_a_user_froze():
    """A norm put in eval mode inside a training model (frozen statistics, as in fine-tuning) reads its running
    statistics: its recomputation must read the same ones, not the scratch a training norm writes into."""
    torch.manual_seed(0)
    plain = frnn()
    randomize_norms(plain)
    for i, norm in enumerate(m for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.train(i % 2 == 0)
    saving = copy.deepcopy(plain)
    saving.checkpoint = True
    x = torch.randn(4, 3, 16, 16)
    for model in (plain, saving):
        model.training = True  # the model trains; half its norms stay frozen
        model(x).square().sum().backward()
    for (name, p), q in zip(plain.named_parameters(), saving.parameters()):
        assert (p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad), name
    for (name, a), b in zip(plain.named_buffers(), saving.buffers()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("spec", ["frnn", "blt/blt", "convrnn/lstm-stream"])
def test_activation_checkpointing_recomputes_each_step_once_and_nothing_more(spec):
    """A checkpointed training step does at most one forward pass more than a plain one: the recomputation
    and nothing else (once, its norms' statistics were copied aside and back at every step: 2 operations per
    buffer of every norm, five times the rest of a step's work on liao2016/frnn4-cifar)."""
    counts = {}
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = (frnn(checkpoint=checkpointing) if spec == "frnn" else
                 build(spec, checkpoint=checkpointing, size=16 if spec.startswith("blt") else None)).train()
        x = torch.randn(2, 3, *model.spec.input.size)
        with Operations() as forward, torch.no_grad():
            model(x)
        with Operations() as step:
            model(x).sum().backward()
        counts[checkpointing] = forward.count, step.count
    (forward, plain), (_, checkpointed) = counts[False], counts[True]
    assert plain < checkpointed <= plain + forward, counts


def test_checkpointing_is_a_spec_field_and_a_build_option():
    text = FRNN.replace("HORIZON", "5").replace("BEYOND", "error") + "checkpoint: true\n"
    assert build(text).checkpoint and not build(text, checkpoint=False).checkpoint
    assert frnn(checkpoint=True).checkpoint


def test_a_plan_reads_as_the_program_it_is():
    doc = {"cortexgraph": 1, "name": "plan-text", "steps": 3, "input": {"channels": 2, "size": 4},
           "areas": {"A": {"channels": 2, "size": 4}, "B": {"channels": 2, "size": 2}}, "inputs": {"A": "once"},
           "defaults": {"horizon": 2, "beyond": "reuse_last"},
           "edges": [{"from": "A", "to": "A", "op": "conv", "share": "none"},
                     {"from": "A", "to": "B", "op": "down", "at": [2, 3]},
                     {"from": "B", "to": "B", "op": "conv", "at": 3}],
           "readout": {"area": "B", "head": {"classes": 2}}}
    model = build(doc)
    program = """\
step 0:   A = input->A(input)
step 1:   A = A->A.t1(A@0)
step 2:   A = A->A.t2(A@1)
          B = A->B(A@1)
"""
    assert str(model.plan) == (
        "Plan for plan-text: 3 steps, readout B at 3; 6 of 7 edge calls run\n" + program
        + "step 3:   B = A->B(A@2) [norm of step 2] + B->B(B@2)")
    assert str(model.plan_for(readout="all")).startswith("Plan for plan-text: 3 steps, readout B at every step; 6 of 7")
    assert str(model.plan_for(states=True)) == (  # past the horizon A->A reuses step 2's weights and norm
        "Plan for plan-text: 3 steps, every area at every step; 7 of 7 edge calls run\n" + program
        + "step 3:   A = A->A.t2(A@2) [norm of step 2]\n"
        + "          B = A->B(A@2) [norm of step 2] + B->B(B@2)")
    doc["readout"]["step"] = [2, 3]
    assert str(build(doc).plan).startswith("Plan for plan-text: 3 steps, readout B at 2, 3; ")


def test_a_hook_sees_the_pre_net_every_call_of_the_plan_in_order_and_the_head_and_changes_nothing():
    from cortexgraph.model import Site

    model = frnn()
    seen = []

    def around(site, run, value):
        seen.append(site)
        return run(value)

    x = torch.randn(2, 3, 16, 16)
    torch.manual_seed(0)
    plain = model(x, readout="all")
    torch.manual_seed(0)
    hooked = model(x, readout="all", around=around)
    assert all(torch.equal(plain[t], hooked[t]) for t in plain)
    plan = model.plan_for(readout="all")
    calls = [Site("call", u.step, u.area, c) for u in plan.updates for c in u.calls]
    heads = [Site("head", t, "V4") for t in sorted(plain)]
    assert seen == [Site("prenet", 0), *calls, *heads]


def test_a_hook_can_replace_what_a_call_makes():
    model = frnn().eval()
    x = torch.randn(1, 3, 16, 16)

    def silence_feedback(site, run, value):  # what the model computes without its top-down edges
        out = run(value)
        return torch.zeros_like(out) if site.what == "call" and site.call.edge.name in ("V2->V1", "V4->V2") else out

    ablated = model(x, around=silence_feedback)
    text = FRNN.replace("HORIZON", "5").replace("BEYOND", "error").replace(
        "V2: {V1: {op: up, delay: 2}, V2: residual, V4: down}", "V2: {V2: residual, V4: down}").replace(
        "V4: {V2: up, V4: residual}", "V4: {V4: residual}")
    without = build(text).eval()
    without.load_state_dict(model.state_dict(), strict=False)
    assert torch.allclose(ablated, without(x), atol=1e-6)
