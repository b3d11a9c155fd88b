"""The ConvRNN streams and the gated cells' options against a reference written here from the structure of
PyTorchTNN's published code (github.com/neuroagents-lab/PyTorchTNN, commit 50713d9), with its module names,
so that its state dicts have the published layout and load through `load_pytorchtnn`:

- `pt_tnn/temporal_graph.py`, `TemporalGraph.forward` (lines 447-491): every node runs at every step,
  step 0 included; the image enters the input nodes at every step; any other node reads its predecessors'
  outputs of the step before, and at step 0 zeros of their output's shape, so that its pre-memory conv runs
  on zeros; a cell's state is None (zeros) at step 0.
- `pt_tnn/recurrent_module.py`, `RecurrentModule.forward` (lines 109-135): harbor, `_pre_memory`,
  `_recurrent_cell`, `_post_memory`; `RecurrentModuleRGC` (lines 236-254) also hands the cell the harbor's
  output before the pre-memory (`res_input`).
- `pt_tnn/pre_post_memory/convolution.py`, `Conv2dCell` (lines 118-120): conv, then its activation.
- `pt_tnn/recurrent_cells/gru_cell.py` (lines 94-122): `conv_ru` on [x, h] gives r, u; `ln_*` layer norms
  over the channels; r = s(r + forget_bias); the candidate `conv_c` on [x, r h]; h' = u h + (1 - u) c.
- `pt_tnn/recurrent_cells/lstm_cell.py` (lines 84-117): one conv on [x, h] gives i, j, f, o;
  c' = c s(f + forget_bias) + s(i) tanh(j), layer-normed by `ln_state`; h' = tanh(c') s(o).
- `pt_tnn/recurrent_cells/reciprocal_gated_cell.py` (lines 627-749, defaults at 307-378): each conv a
  `Conv2dOp` (`.conv`); c' = E((1 - s(cell_tau c)) c + (1 - s(cell_gate h)) inp2cell x) and
  h' = E((1 - s(out_tau h)) h + (1 - s(cell2out c + out_gate res)) x), E the ELU, `ln_cell`/`ln_out`
  before it; `out_gate_conv` where `residual_to_out_gate` (its default, on in `configs/test_rgc_shallow.json`);
  the memory has `cell_depth` channels.
- `pt_tnn/pre_post_memory/sequential.py`, `pooling.py`, `full_connected.py`: the readout node's
  post-memory, an average pool (flattened) then a linear layer (`sequential_mem.1.lin`).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cortexgraph.interop import WeightMapError, load_pytorchtnn
from cortexgraph.interop.pytorchtnn import pytorchtnn_weights


class Conv2dCell(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, activation: str | None = "ReLU"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, padding=1)
        self.activation = getattr(nn, activation)() if activation else nn.Identity()

    def forward(self, x):
        return self.activation(self.conv(x))


def _ln(x, norm):  # a layer norm over the channels, NHWC as PyTorchTNN applies it
    return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GRUCell(nn.Module):
    def __init__(self, c: int, forget_bias: float = 1.0, layernorm: bool = False):
        super().__init__()
        self.conv_ru, self.conv_c = nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.Conv2d(2 * c, c, 3, padding=1)
        self.forget_bias, self.layernorm = forget_bias, layernorm
        if layernorm:
            self.ln_r_pre, self.ln_u_pre, self.ln_c_pre = nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c)

    def forward(self, x, state, res=None):
        state = torch.zeros_like(x) if state is None else state
        r, u = torch.tensor_split(self.conv_ru(torch.cat([x, state], 1)), 2, dim=1)
        if self.layernorm:
            r, u = _ln(r, self.ln_r_pre), _ln(u, self.ln_u_pre)
        r, u = torch.sigmoid(r + self.forget_bias), torch.sigmoid(u)
        c = self.conv_c(torch.cat([x, r * state], 1))
        c = torch.tanh(_ln(c, self.ln_c_pre) if self.layernorm else c)
        new = u * state + (1 - u) * c
        return new, new


class LSTMCell(nn.Module):
    def __init__(self, c: int, forget_bias: float = 1.0, layernorm: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(2 * c, 4 * c, 3, padding=1)
        self.forget_bias, self.layernorm = forget_bias, layernorm
        if layernorm:
            for name in ("ln_input", "ln_transform", "ln_forget", "ln_output", "ln_state"):
                setattr(self, name, nn.LayerNorm(c))

    def forward(self, x, state, res=None):
        state = torch.zeros_like(torch.cat([x, x], 1)) if state is None else state
        c, h = torch.tensor_split(state, 2, dim=1)
        i, j, f, o = torch.tensor_split(self.conv(torch.cat([x, h], 1)), 4, dim=1)
        if self.layernorm:
            i, j = _ln(i, self.ln_input), _ln(j, self.ln_transform)
            f, o = _ln(f, self.ln_forget), _ln(o, self.ln_output)
        c = c * torch.sigmoid(f + self.forget_bias) + torch.sigmoid(i) * torch.tanh(j)
        if self.layernorm:
            c = _ln(c, self.ln_state)
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, torch.cat([c, h], 1)


class Conv2dOp(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class ReciprocalGatedCell(nn.Module):
    def __init__(self, c: int, cell_depth: int, res_channels: int, residual_to_out_gate: bool = True,
                 layernorm: bool = False):
        super().__init__()
        self.out_tau_conv = Conv2dOp(c, c)
        if residual_to_out_gate:
            self.out_gate_conv = Conv2dOp(res_channels, c)
        self.inp2cell_conv, self.cell_tau_conv = Conv2dOp(c, cell_depth), Conv2dOp(cell_depth, cell_depth)
        self.cell_gate_conv, self.cell2out_conv = Conv2dOp(c, cell_depth), Conv2dOp(cell_depth, c)
        self.cell_depth, self.layernorm = cell_depth, layernorm
        if layernorm:
            self.ln_cell, self.ln_out = nn.LayerNorm(cell_depth), nn.LayerNorm(c)

    def forward(self, x, state, res):
        if state is None:
            state = x.new_zeros((x.shape[0], self.cell_depth + x.shape[1], *x.shape[2:]))
        c, h = state[:, :self.cell_depth], state[:, self.cell_depth:]
        new_c = ((1 - torch.sigmoid(self.cell_tau_conv(c))) * c
                 + (1 - torch.sigmoid(self.cell_gate_conv(h))) * self.inp2cell_conv(x))
        new_c = F.elu(_ln(new_c, self.ln_cell) if self.layernorm else new_c)
        gate = self.cell2out_conv(c)
        if hasattr(self, "out_gate_conv"):
            gate = gate + self.out_gate_conv(res)
        new_h = (1 - torch.sigmoid(self.out_tau_conv(h))) * h + (1 - torch.sigmoid(gate)) * x
        new_h = F.elu(_ln(new_h, self.ln_out) if self.layernorm else new_h)
        return new_h, torch.cat([new_c, new_h], 1)


class Readout(nn.Module):
    """`Sequential([AdaptiveAvgPool(1, flatten=True), FullyConnected(classes)])`."""

    def __init__(self, c: int, classes: int):
        super().__init__()
        self.sequential_mem = nn.ModuleList([nn.AdaptiveAvgPool2d(1), nn.Module()])
        self.sequential_mem[1].lin = nn.Linear(c, classes)

    def forward(self, x):
        return self.sequential_mem[1].lin(self.sequential_mem[0](x).flatten(1))


class Node(nn.Module):
    """`RecurrentModule` (`RecurrentModuleRGC` for the gated reciprocal cell) of one area."""

    def __init__(self, pre: nn.Module, cell: nn.Module, post: nn.Module, out_shape: tuple[int, ...]):
        super().__init__()
        self._pre_memory, self._recurrent_cell, self._post_memory = pre, cell, post
        self.out_shape = out_shape  # (channels, height, width) of its output: the zeros read at step 0

    def forward(self, harbor, state):
        out, state = self._recurrent_cell(self._pre_memory(harbor), state, harbor)
        return self._post_memory(out), state


class TemporalGraph(nn.Module):
    """A chain of nodes, the first an input node, unrolled as `TemporalGraph.forward` does."""

    def __init__(self, nodes: dict[str, Node]):
        super().__init__()
        for name, node in nodes.items():
            setattr(self, name, node)
        self.names = list(nodes)

    def forward(self, x, n_times: int) -> list:
        outputs, states, last = {}, {}, []
        for t in range(n_times):
            new_outputs, new_states = {}, {}
            for i, name in enumerate(self.names):
                node = getattr(self, name)
                if i == 0:
                    harbor = x
                else:
                    pred = self.names[i - 1]
                    harbor = outputs[pred] if t else x.new_zeros((x.shape[0], *getattr(self, pred).out_shape))
                new_outputs[name], new_states[name] = node(harbor, states.get(name) if t else None)
            outputs, states = new_outputs, new_states
            last.append(outputs[self.names[-1]])
        return last


AREAS = {"V1": (32, 32), "V2": (64, 16), "V4": (128, 8), "IT": (256, 4)}  # the bundled streams' (channels, size)


def stream(cell: str) -> TemporalGraph:
    """The TemporalGraph of `convrnn/<cell>-stream`: strided pre-memory convs with ReLU, PyTorchTNN's cells
    with their defaults (the gated reciprocal cell without residual_to_out_gate: its pre-memory is strided)."""
    nodes, cin = {}, 3
    for name, (c, size) in AREAS.items():
        made = pytorchtnn_cell(cell, c, c, cin, layernorm=False, residual_to_out_gate=False)
        post = Readout(c, 10) if name == "IT" else nn.Identity()
        nodes[name] = Node(Conv2dCell(cin, c, stride=1 if name == "V1" else 2), made, post, (c, size, size))
        cin = c
    return TemporalGraph(nodes)


def pytorchtnn_cell(cell: str, c: int, depth: int, res: int, layernorm: bool, residual_to_out_gate: bool):
    """PyTorchTNN's cell of that kind, its forget bias 1.0 (GRU and LSTM), its memory `depth` (RGC)."""
    if cell == "gru":
        return GRUCell(c, layernorm=layernorm)
    if cell == "lstm":
        return LSTMCell(c, layernorm=layernorm)
    return ReciprocalGatedCell(c, depth, res, residual_to_out_gate, layernorm)


def _randomized(reference: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():  # biases and norms away from their init (zeros, ones), so that a misplaced one shows
        for name, p in reference.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.uniform_(-0.5, 0.5) if name.endswith("bias") else p.uniform_(0.5, 1.5)
    return reference.double().train()


def _compare(model, reference: TemporalGraph, x, steps: int) -> None:
    """Every step's output, the image's gradient and every weight's, in float64."""
    x_ref = x.detach().clone().requires_grad_(True)
    got, want = model(x, readout="all"), reference(x_ref, steps + 1)
    assert list(got) == list(range(steps + 1))
    for t in got:
        torch.testing.assert_close(got[t], want[t], rtol=1e-9, atol=1e-10, msg=f"step {t}")
    sum((t + 1) * v.square().sum() for t, v in got.items()).backward()
    sum((t + 1) * v.square().sum() for t, v in enumerate(want)).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-10, msg="the image's gradient")
    # their gradients, named and split as their weights are, against ours
    grads, names = pytorchtnn_weights(model, {k: p.grad for k, p in reference.named_parameters()})
    ours = dict(model.named_parameters())
    assert {names[k] for k in grads} == set(ours)
    for theirs, grad in grads.items():
        torch.testing.assert_close(ours[names[theirs]].grad, grad, rtol=1e-9, atol=1e-10, msg=theirs)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rgc"])
def test_each_stream_computes_what_pytorchtnn_computes(cell):
    from cortexgraph import compile

    reference = _randomized(stream(cell))
    model = load_pytorchtnn(f"convrnn/{cell}-stream", reference.state_dict()).double().train()
    steps = compile(f"convrnn/{cell}-stream").steps  # the bundled 8 (9 of PyTorchTNN's n_times)
    _compare(model, reference, torch.randn(2, 3, 32, 32, dtype=torch.float64, requires_grad=True), steps)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())


SHALLOW = """
cortexgraph: 1
name: rgc-shallow-like
input: {channels: 3, size: 8}
silence: computed
areas:
  V1: {channels: 4, size: 8, cell: CELL1}
  V2: {channels: 5, size: 4, cell: CELL2}
inputs:
  V1: {at: every, op: {conv: {bias: true}}}
steps: 3
defaults: {norm: none, activation: elu}
edges:
  - {from: V1, to: V2, op: {conv: {bias: true, pool_input: {kernel: 2, stride: 2}}}}
EXTRA
readout: {area: V2, head: {classes: 3}}
"""

GATES = """  - {from: input, to: V1, name: V1_gate, op: {conv: {bias: true}}, activation: none, into: out_gate}
  - {from: V1, to: V2, name: V2_gate, op: {conv: {bias: true, pool_input: {kernel: 2, stride: 2}}},
     activation: none, into: out_gate}"""


def shallow(cell: str) -> TemporalGraph:
    """Two nodes laid out as `configs/test_rgc_shallow.json`'s conv3-5: a stride-1 pre-memory conv with ELU,
    the cell with layer norms, V1's output max-pooled in its post-memory; the reciprocal gated cells with
    `residual_to_out_gate` and a memory of other channels than the output."""
    return TemporalGraph({
        "V1": Node(Conv2dCell(3, 4, activation="ELU"), pytorchtnn_cell(cell, 4, 6, 3, True, True),
                   nn.MaxPool2d(2, 2), (4, 4, 4)),
        "V2": Node(Conv2dCell(4, 5, activation="ELU"), pytorchtnn_cell(cell, 5, 3, 4, True, True), Readout(5, 3),
                   (3,))})


@pytest.mark.parametrize("cell", ["gru", "lstm", "rgc"])
def test_the_cells_options_compute_what_pytorchtnn_computes(cell):
    option = {"gru": "reset_bias: 1.0", "lstm": "forget_bias: 1.0", "rgc": "memory_channels: MEMORY"}[cell]
    text = SHALLOW.replace("EXTRA\n", GATES + "\n" if cell == "rgc" else "")
    for area, memory in (("CELL1", 6), ("CELL2", 3)):
        text = text.replace(area, f"{{{cell}: {{layer_norm: true, {option.replace('MEMORY', str(memory))}}}}}")
    reference = _randomized(shallow(cell))
    model = load_pytorchtnn(text, reference.state_dict()).double().train()
    _compare(model, reference, torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True), 3)


def test_load_pytorchtnn_names_what_does_not_fit():
    reference = stream("gru")
    with pytest.raises(WeightMapError, match=r"PyTorchTNN's 'V2._recurrent_cell.conv.weight' has no counterpart"):
        load_pytorchtnn("convrnn/gru-stream", stream("lstm").state_dict())
    without_head = {k: v for k, v in reference.state_dict().items() if "_post_memory" not in k}
    with pytest.raises(WeightMapError, match=r"'head.fc.weight' gets no value from PyTorchTNN \(expected "
                                             r"'IT._post_memory.sequential_mem.1.lin.weight'\)"):
        load_pytorchtnn("convrnn/gru-stream", without_head)
    with pytest.raises(WeightMapError, match=r"^cannot load PyTorchTNN weights into two: area 'B' has 2 driving "
                                             r"edges \(input->B, A->B\) and PyTorchTNN's node one pre-memory conv, "
                                             r"its weights shared across time$"):
        load_pytorchtnn({"cortexgraph": 1, "name": "two", "steps": 1, "input": {"channels": 2, "size": 4},
                         "areas": {"A": {"channels": 2, "size": 4}, "B": {"channels": 2, "size": 4}},
                         "inputs": {"A": "every", "B": "every"}, "edges": [{"from": "A", "to": "B", "op": "conv"}],
                         "readout": {"area": "B", "head": {"classes": 2}}}, {})
