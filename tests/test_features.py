"""Features for brain benchmarks: `model.features` and `cortexgraph.features` equal `return_states` and run
only what the values asked for need; `write_features` and `cortexgraph features` stream them to disk."""

import json

import numpy as np
import pytest
import torch

import cortexgraph
from cortexgraph import build
from cortexgraph.cli import main
from cortexgraph.extract import AreaLayers, parse_at, write_features
from cortexgraph.train.data import make_data

from .helpers import randomize_norms

SPECS = {"frnn3-digits": ("demo/frnn3-digits", {}), "gru-stream": ("convrnn/gru-stream", {"size": 8}),
         "blt": ("blt/spoerer2017-blt", {}), "cornet-rt": ("cornet/cornet-rt", {"size": 32})}


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("train", [False, True])
def test_features_are_the_states_of_a_full_run(name, train):
    spec, overrides = SPECS[name]
    torch.manual_seed(0)
    model = build(spec, **overrides).double()
    randomize_norms(model)
    model.train(train)
    x = torch.randn(3, model.spec.input.channels, *model.spec.input.size, dtype=torch.float64)
    _, states = model(x, return_states=True)
    got = model.features(x, list(states))
    assert set(got) == set(states)
    for key, value in states.items():
        torch.testing.assert_close(got[key], value, rtol=1e-12, atol=1e-12, msg=str(key))


def test_only_what_the_values_asked_for_need_runs():
    model = build("demo/frnn3-digits")
    x = torch.randn(2, 1, 16, 16)
    model.features(x, [("V1", 0)])
    plans = [plan for key, (_, plan) in model._programs.items() if "features" in key]
    assert [u.area for u in plans[0].updates] == ["V1"] and plans[0].calls == 1
    model.features(x, [("V4", 3)])
    plan = model._programs[(3, "features", frozenset({("V4", 3)}))][1]
    assert all(u.step <= 3 for u in plan.updates) and ("V4", 3) in {(u.area, u.step) for u in plan.updates}
    assert plan.calls < model.plan_for(3, states=True).calls
    assert "features V4.t3" in str(plan)


def test_names_and_pooling():
    model = build("demo/frnn3-digits").eval()
    assert parse_at(model, ["V4.t3", "V4.all", "V1.t0"]) == [("V4", 3), ("V4", 2), ("V4", 4), ("V4", 5),
                                                              ("V4", 6), ("V1", 0)]
    x = torch.randn(2, 1, 16, 16)
    whole = cortexgraph.features(model, x, ["V2.t4"])[("V2", 4)]
    assert whole.shape == (2, 32, 8, 8)
    torch.testing.assert_close(cortexgraph.features(model, x, ["V2.t4"], pool="avg")[("V2", 4)], whole.mean((2, 3)))
    torch.testing.assert_close(cortexgraph.features(model, x, ["V2.t4"], pool="max")[("V2", 4)], whole.amax((2, 3)))


@pytest.mark.parametrize("at, message", [
    (["V4"], "'V4' is not a feature name; write AREA.tSTEP (V4.t3) or AREA.all"),
    (["V5.t2"], "'V5.t2': unknown area 'V5'; the areas are V1, V2, V4"),
    (["V4.t1"], "V4 holds no value at step 1 (it does from step 2 on)"),
])
def test_bad_feature_names_are_one_message(at, message):
    model = build("demo/frnn3-digits")
    with pytest.raises(ValueError) as caught:
        cortexgraph.features(model, torch.randn(1, 1, 16, 16), at)
    assert str(caught.value) == message


@pytest.mark.parametrize("out", ["folder", "features.h5"])
def test_features_stream_to_disk_in_chunks(tmp_path, out):
    model = build("demo/frnn3-digits").eval()
    data = make_data("digits", model.spec).test
    path = write_features(model, data, ["V4.t3", "V1.t0"], tmp_path / out, pool="avg", batch_size=100,
                          about={"stimuli": "digits"})
    x = torch.stack([image for image, _ in data])
    with torch.no_grad():
        want = cortexgraph.features(model, x, ["V4.t3", "V1.t0"], pool="avg")
    labels = np.array([int(y) for _, y in data])
    if out == "folder":
        stored = {name: np.load(path / f"{name}.npy") for name in ("V4.t3", "V1.t0", "labels")}
        meta = json.loads((path / "features.json").read_text())
        assert meta["shapes"]["V4.t3"] == [360, 64]
    else:
        import h5py

        with h5py.File(path) as f:
            stored = {name: f[name][:] for name in ("V4.t3", "V1.t0", "labels")}
            meta = json.loads(f.attrs["features"])
    assert meta["names"] == ["V4.t3", "V1.t0"] and meta["images"] == 360 and meta["stimuli"] == "digits"
    assert meta["spec"]["name"] == "frnn3-digits" and meta["pool"] == "avg"
    np.testing.assert_allclose(stored["V4.t3"], want[("V4", 3)].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stored["V1.t0"], want[("V1", 0)].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(stored["labels"], labels)


def test_the_features_command_records_the_checkpoint_and_the_stimuli(tmp_path, capsys):
    from cortexgraph.train import TrainConfig, train

    train(TrainConfig(spec="demo/frnn3-digits", data="digits", out=str(tmp_path / "run"), epochs=1,
                      batch_size=64, progress=False, limit_batches=2))
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    out = tmp_path / "features"
    assert main(["features", str(checkpoint), "--at", "V4.all", "--pool", "max", "--limit", "50",
                 "--out", str(out)]) == 0
    meta = json.loads((out / "features.json").read_text())
    import hashlib

    assert meta["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert meta["stimuli"] == {"data": "digits", "split": "test", "images": 50}
    assert meta["names"] == [f"V4.t{t}" for t in range(2, 7)] and np.load(out / "V4.t2.npy").shape == (50, 64)
    assert "wrote the features of 50 images (digits, test split)" in capsys.readouterr().out
    assert main(["features", str(checkpoint), "--at", "V4.t0", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "cortexgraph: V4 holds no value at step 0 (it does from step 2 on)"


def _layer(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """A layer found as Brain-Score's PytorchWrapper.get_layer finds it: submodules by dotted name."""
    for part in name.split("."):
        model = model._modules.get(part)
        assert model is not None, name
    return model


def test_area_layers_are_found_and_hooked_as_layer_extractors_do():
    model = build("demo/frnn3-digits").eval()
    layers = AreaLayers(model)
    got = {}
    for name in ("V4.t3", "V2.t5"):
        _layer(layers, name).register_forward_hook(lambda m, i, out, name=name: got.__setitem__(name, out))
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        returned = layers(x)
        _, states = model(x, return_states=True)
    assert set(returned) == {("V4", 3), ("V2", 5)}  # only the hooked layers were computed
    torch.testing.assert_close(got["V4.t3"], states[("V4", 3)])
    torch.testing.assert_close(got["V2.t5"], states[("V2", 5)])
    assert {n for n, m in layers.named_modules() if isinstance(m, torch.nn.Identity) and "." in n
            and not n.startswith("cortexnet.")} == {
        f"{a}.t{t}" for a, t in parse_at(model, ["V1.all", "V2.all", "V4.all"])}


def test_brain_score_s_activations_extractor_reads_the_area_layers(tmp_path, monkeypatch):
    """Brain-Score's own extractor (brainscore-vision, the `brainscore` extra), on images made here."""
    pytorch = pytest.importorskip("brainscore_vision.model_helpers.activations.pytorch")
    from functools import partial

    from PIL import Image

    monkeypatch.setenv("RESULTCACHING_DISABLE", "1")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"image{i}.png"))
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(paths[-1])
    model = build("convrnn/gru-stream", size=16).eval()
    wrapper = pytorch.PytorchWrapper(AreaLayers(model), partial(pytorch.load_preprocess_images, image_size=16),
                                     identifier="gru-stream-test")
    names = ["V4.t3", "IT.t8"]
    activations = wrapper(paths, layers=names)
    images = torch.from_numpy(pytorch.load_preprocess_images(paths, image_size=16))
    with torch.no_grad():
        want = cortexgraph.features(model, images, names)
    flat = np.concatenate([want[(n.split(".")[0], int(n.split(".t")[1]))].reshape(6, -1).numpy() for n in names], 1)
    assert list(dict.fromkeys(activations["layer"].values)) == names
    np.testing.assert_allclose(activations.values, flat, rtol=1e-5, atol=1e-6)


def test_the_rest_of_the_feature_errors_are_one_message(tmp_path, monkeypatch):
    import builtins

    model = build("demo/frnn3-digits").eval()
    x = torch.randn(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"ask for at least one \(area, step\) value"):
        model.features(x, [])
    with pytest.raises(ValueError, match="pool is None \\(whole maps\\), 'avg' or 'max'; got 'sum'"):
        cortexgraph.features(model, x, ["V1.t0"], pool="sum")
    doc = {"cortexgraph": 1, "name": "named", "input": {"channels": 1, "size": 4},
           "areas": {"cortexnet": {"channels": 2, "size": 4}}, "inputs": {"cortexnet": {"at": "once", "op": "conv"}},
           "steps": 1, "readout": {"area": "cortexnet", "head": {"classes": 2}}}
    with pytest.raises(ValueError, match="an area named 'cortexnet' would hide the model in AreaLayers; rename it"):
        AreaLayers(build(doc))
    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    data = torch.utils.data.TensorDataset(torch.randn(4, 1, 16, 16), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"writing f.h5 needs h5py: pip install 'cortexgraph\[hdf5\]' \(or write "
                                         r"to a folder of .npy files\)"):
        write_features(model, data, ["V1.t0"], tmp_path / "f.h5")


def test_features_are_staged_beside_their_output_whatever_the_temporary_folder(tmp_path, monkeypatch):
    """The staging file or folder is renamed into place when complete: it must be on the output's file system,
    beside it, never in the system's temporary folder (here one that does not exist)."""
    import tempfile

    from torch.utils.data import Subset

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    model = build("demo/frnn3-digits").eval()
    data = Subset(make_data("digits", model.spec).test, range(8))
    for out in ("folder", "f.h5"):
        path = write_features(model, data, ["V1.t0"], tmp_path / out)
        assert path == tmp_path / out and path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5", "folder"]
