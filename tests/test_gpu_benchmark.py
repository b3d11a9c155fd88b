"""The GPU benchmark's bookkeeping, on the CPU: a device session is short and cannot be rerun, so what it
measures must reach its files row by row, the runs without compiling first."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu  # noqa: E402


def test_a_spec_yields_its_rows_as_measured_the_uncompiled_ones_first(monkeypatch):
    compiled = []
    real_compile = torch.compile

    def compile_(*args, **kwargs):
        compiled.append(kwargs)
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", compile_)
    rows = gpu.recurrent_rows("liao2016/srn1-cifar", 2, 8, "cpu", ("default",), "aot_eager", repeats=1, warmup=0)
    for expected in ("eager", "checkpointed", "naive"):
        row = next(rows)
        assert (row["run"], compiled) == (expected, [])
        assert row["vs_eager"] > 0 and row["compile_s"] is None
    row = next(rows)
    assert row["run"] == "default" and row["compile_s"] > 0 and compiled == [{"fullgraph": True,
                                                                              "backend": "aot_eager"}]
    with pytest.raises(StopIteration):
        next(rows)


def test_a_run_stopped_mid_spec_keeps_the_rows_before_in_its_file(tmp_path, monkeypatch):
    def two_rows_then_a_timeout(name, batch, size, *args, **kwargs):
        for run in ("eager", "checkpointed"):
            yield {"spec": name, "batch": batch, "size": size, "run": run, "ms": 1.0, "images_per_second": 1e3,
                   "vs_eager": 1.0, "gpu_busy": None, "peak_mb": None, "compile_s": None}
        raise TimeoutError  # as `timeout` stops the script

    monkeypatch.setattr(gpu, "recurrent_rows", two_rows_then_a_timeout)
    monkeypatch.setattr(gpu, "matmul_rate", lambda device, size: 1e12)
    out = tmp_path / "gpu.json"
    monkeypatch.setattr(sys, "argv", ["gpu.py", "--device", "cpu", "--quick", "--recurrent-only", "--json", str(out)])
    with pytest.raises(TimeoutError):
        gpu.main()
    assert [r["run"] for r in json.loads(out.read_text())["recurrent"]] == ["eager", "checkpointed"]


def test_the_optimizer_graph_row_measures_the_spec_as_written_whatever_the_modes(monkeypatch):
    """The optimizer's step in a graph reuses the model's CUDA graphs where reduce-overhead made them; with
    that mode left out it compiles the spec afresh, never the stacked-norms variant of the row before."""
    compiled, real_compile, real_stack = [], torch.compile, gpu.stack_norms

    def compile_(target, **kwargs):
        compiled.append(getattr(target, "stacked", isinstance(target, torch.nn.Module) and "unstacked"))
        return real_compile(target, **kwargs)

    def stack_norms(model):
        real_stack(model)
        model.stacked = "stacked"

    monkeypatch.setattr(torch, "compile", compile_)
    monkeypatch.setattr(gpu, "stack_norms", stack_norms)
    rows = list(gpu.recurrent_rows("liao2016/srn1-cifar", 2, 8, "cpu", (), "aot_eager", repeats=1, warmup=0,
                                   extras=True))
    assert [r["run"] for r in rows] == ["eager", "checkpointed", "naive", "eager, stacked", "r-o, stacked",
                                        "r-o, opt. graph"]
    assert compiled == ["stacked", "unstacked", False]  # the last: the optimizer's step


def test_a_compiled_optimizer_step_starts_eagerly_and_gradients_never_outlive_a_step(monkeypatch):
    """Under CUDA graphs the momentum buffers must be made outside a graph's memory pool (its outputs are
    freed at the next step), and a `.grad` kept across steps would be a graph output the next replay
    overwrites: the first optimizer step runs eagerly, and gradients are None after every step."""
    calls = []

    def compile_(target, **kwargs):
        def compiled():
            calls.append("compiled")
            return target()
        return compiled

    monkeypatch.setattr(torch, "compile", compile_)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])
    step = gpu.training_step(model, x, y, "cpu", optimizer_compiled={"backend": "aot_eager"})
    for taken in range(3):
        step()
        assert calls == ["compiled"] * taken
        assert all(p.grad is None for p in model.parameters())


def test_a_write_stopped_halfway_leaves_the_rows_written_before(tmp_path, monkeypatch):
    from common import write_json

    out = tmp_path / "gpu.json"
    write_json(str(out), {"recurrent": [{"run": "eager"}]}, say=False)
    real_write = Path.write_text

    def stopped_halfway(self, data, *args, **kwargs):
        real_write(self, data[: len(data) // 2], *args, **kwargs)
        raise KeyboardInterrupt  # `timeout -s INT` landing mid-write

    monkeypatch.setattr(Path, "write_text", stopped_halfway)
    with pytest.raises(KeyboardInterrupt):
        write_json(str(out), {"recurrent": [{"run": "eager"}, {"run": "checkpointed"}]}, say=False)
    monkeypatch.undo()
    assert json.loads(out.read_text())["recurrent"] == [{"run": "eager"}]
    assert [p.name for p in tmp_path.iterdir()] == ["gpu.json"]  # no temporary left behind
