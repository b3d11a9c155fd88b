"""The data a scientist brings (issue 30): image folders of any channels, arrays and sequences in the formats
the field keeps them in, torchvision's named data sets read from small files in their published formats (no
downloads), and what each image goes through (channels, size, augmentation, normalisation) as settings."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from cortexgraph.cli import main
from cortexgraph.spec import load_spec
from cortexgraph.train import TrainConfig
from cortexgraph.train.data import DataError, make_data, stacked


def spec_doc(channels: int = 1, size: int = 8, classes: int = 3, frames: bool = False) -> dict:
    doc = {"cortexgraph": 1, "name": "small", "input": {"channels": channels, "size": size},
           "prenet": [{"conv": {"out": 4}}],
           "areas": {"A": {"channels": 4, "size": size}, "B": {"channels": 4, "size": size // 2}},
           "inputs": {"A": "every" if frames else "once"}, "steps": 3,
           "transitions": {"A": {"A": "residual", "B": "down"}, "B": {"B": "residual"}},
           "readout": {"area": "B", "head": {"classes": classes}}}
    if frames:
        doc["input"]["stimulus"] = {"frames": "hold"}
    return doc


def write_spec(tmp_path, **kwargs) -> str:
    path = tmp_path / "small.json"
    path.write_text(json.dumps(spec_doc(**kwargs)))
    return str(path)


def train_from_the_command_line(spec: str, out, *flags: str) -> dict:
    assert main(["train", spec, "--out", str(out), "--epochs", "1", "--batch-size", "8", "--quiet", *flags]) == 0
    return json.loads((out / "metrics.json").read_text())


# --- a new user's data, each in one command -------------------------------------------------------------


def test_a_greyscale_image_folder_trains_in_one_command(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, n in (("train", 6), ("val", 2)):
        for label in ("zero", "one", "two"):
            folder = tmp_path / "digits" / part / label
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (12, 10), dtype=np.uint8), mode="L").save(folder / f"{i}.png")
    spec = write_spec(tmp_path, channels=1)
    metrics = train_from_the_command_line(spec, tmp_path / "run", "--data", f"imagefolder:{tmp_path / 'digits'}")
    assert len(metrics["epochs"]) == 1
    data = make_data(f"imagefolder:{tmp_path / 'digits'}", load_spec(spec))
    x, y = stacked(data.test)
    assert x.shape == (6, 1, 8, 8) and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]
    assert data.augment == "none" and data.normalize.startswith("computed")  # no ImageNet recipe by default
    assert abs(float(stacked(data.plain_train)[0].mean())) < 1e-5  # computed over these very images


def test_an_npz_of_sequences_trains_in_one_command(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "moving.npz", x=rng.integers(0, 255, (30, 5, 1, 8, 8), dtype=np.uint8),
             y=np.arange(30) % 3)
    spec = write_spec(tmp_path, frames=True)
    metrics = train_from_the_command_line(spec, tmp_path / "run", "--data", f"arrays:{tmp_path / 'moving.npz'}")
    assert metrics["epochs"][0]["test_acc"] >= 0
    data = make_data(f"arrays:{tmp_path / 'moving.npz'}", load_spec(spec))
    assert (len(data.train), len(data.test)) == (24, 6) and data.test[0][0].shape == (5, 1, 8, 8)
    assert isinstance(data.train.source.images, np.memmap)  # read an item at a time, not loaded


def write_mnist(root, name: str = "MNIST", n: tuple[int, int] = (20, 10)) -> None:
    """MNIST's idx files as torchvision reads them: a magic number, the sizes (big-endian), the bytes."""
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, count in zip(("train", "t10k"), n):
        images = rng.integers(0, 255, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([0x803, count, 28, 28], ">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([0x801, count], ">i4").tobytes() + labels.tobytes())


def test_mnist_in_torchvision_s_format_trains_in_one_command(tmp_path):
    write_mnist(tmp_path / "data")
    spec = write_spec(tmp_path, channels=1, size=8, classes=10)
    metrics = train_from_the_command_line(spec, tmp_path / "run", "--data", "mnist", "--data-dir",
                                          str(tmp_path / "data"))
    assert len(metrics["epochs"]) == 1
    data = make_data("mnist", load_spec(spec), tmp_path / "data")
    assert (len(data.train), len(data.test), data.classes) == (20, 10, 10) and data.test[0][0].shape == (1, 8, 8)


# --- torchvision's named sets, read from their published formats ------------------------------------------


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    write_mnist(tmp_path, "FashionMNIST", (10, 10))
    data = make_data("fashion-mnist", load_spec(spec_doc(channels=3, size=16, classes=10)), tmp_path)
    assert data.train[0][0].shape == (3, 16, 16)  # one channel repeated to the spec's three, resized


def test_cifar100_reads_the_real_format(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 20), ("test", 10)):
        (folder / name).write_bytes(pickle.dumps({"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                                                  "fine_labels": [i % 100 for i in range(0, 5 * n, 5)]}))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    # The pickles are read only once their checksums are torchvision's: here, those of these files.
    monkeypatch.setattr(cifar.CIFAR100, "train_list", [["train", md5(folder / "train")]])
    monkeypatch.setattr(cifar.CIFAR100, "test_list", [["test", md5(folder / "test")]])
    monkeypatch.setattr(cifar.CIFAR100, "meta", {**cifar.CIFAR100.meta, "md5": md5(folder / "meta")})
    data = make_data("cifar100", load_spec(spec_doc(channels=3, size=32, classes=100)), tmp_path)
    assert (len(data.train), data.classes, data.augment) == (20, 100, "crop")
    (folder / "train").write_bytes(pickle.dumps({"data": "a hostile pickle would run here"}))
    with pytest.raises(DataError, match="cifar100 is not in .*pass --download to fetch it there"):
        make_data("cifar100", load_spec(spec_doc(channels=3, size=32, classes=100)), tmp_path)  # never unpickled


def test_svhn_reads_its_mat_files(tmp_path, monkeypatch):
    from scipy.io import savemat
    from torchvision.datasets import SVHN

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        savemat(tmp_path / f"{split}_32x32.mat", {"X": rng.integers(0, 255, (32, 32, 3, n), dtype=np.uint8),
                                                  "y": (np.arange(n) % 10 + 1).reshape(n, 1)})  # 10 is a zero
        monkeypatch.setitem(SVHN.split_list, split, ["", f"{split}_32x32.mat", md5(tmp_path / f"{split}_32x32.mat")])
    data = make_data("svhn", load_spec(spec_doc(channels=3, size=8, classes=10)), tmp_path)
    assert (len(data.train), len(data.test), data.classes) == (12, 6, 10)
    assert data.train.source.labels.tolist()[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]


def test_stl10_reads_its_binary_files(tmp_path, monkeypatch):
    from torchvision.datasets import STL10

    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(0)
    files = {"train_X.bin": rng.integers(0, 255, 4 * 3 * 96 * 96, dtype=np.uint8),
             "train_y.bin": np.array([1, 2, 3, 10], np.uint8),
             "unlabeled_X.bin": rng.integers(0, 255, 3 * 96 * 96, dtype=np.uint8),
             "test_X.bin": rng.integers(0, 255, 2 * 3 * 96 * 96, dtype=np.uint8),
             "test_y.bin": np.array([1, 2], np.uint8)}
    for name, values in files.items():
        (folder / name).write_bytes(values.tobytes())
    monkeypatch.setattr(STL10, "train_list", [[n, md5(folder / n)] for n in ("train_X.bin", "train_y.bin",
                                                                               "unlabeled_X.bin")])
    monkeypatch.setattr(STL10, "test_list", [[n, md5(folder / n)] for n in ("test_X.bin", "test_y.bin")])
    data = make_data("stl10", load_spec(spec_doc(channels=3, size=32, classes=10)), tmp_path)
    assert (len(data.train), len(data.test), data.classes) == (4, 2, 10) and data.test[0][0].shape == (3, 32, 32)
    assert data.train.source.labels.tolist() == [0, 1, 2, 9]


def test_imagenet_is_a_folder_at_data_dir_with_its_recipe(tmp_path):
    from PIL import Image

    for part in ("train", "val"):
        for wnid in ("n01", "n02"):
            (tmp_path / part / wnid).mkdir(parents=True)
            Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / part / wnid / "a.jpg")
    data = make_data("imagenet", load_spec(spec_doc(channels=3, size=16, classes=2)), tmp_path)
    assert (data.name, data.augment, data.normalize, data.classes) == ("imagenet", "imagenet", "imagenet", 2)
    assert data.train[0][0].shape == data.test[0][0].shape == (3, 16, 16)
    with pytest.raises(DataError, match=r"is not a folder; imagenet wants .*/train/<class>/<image> and "
                                        r".*/val/<class>/<image> \(ImageNet's layout; --data-dir names the folder\)$"):
        make_data("imagenet", load_spec(spec_doc(channels=3, size=16, classes=2)), tmp_path / "nowhere")


def test_nothing_is_downloaded_unless_asked(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as mnist

    monkeypatch.setattr(mnist, "download_and_extract_archive", lambda *a, **k: pytest.fail("downloaded unasked"))
    with pytest.raises(DataError, match=r"^mnist is not in .* \(torchvision's layout: .*/MNIST/raw/train-images-idx3-"
                                        r"ubyte \(and its labels and t10k- files\)\); pass --download to fetch it "
                                        r"there, or --data-dir to name where it is$"):
        make_data("mnist", load_spec(spec_doc()), tmp_path)
    assert not (tmp_path / "MNIST").exists()


# --- arrays in every format ------------------------------------------------------------------------------


def images_and_labels(n: int = 20, shape=(1, 8, 8)):
    rng = np.random.default_rng(0)
    return rng.random((n, *shape), dtype=np.float32), np.arange(n) % 2


@pytest.mark.parametrize("fmt", ["npz", "npz-compressed", "h5", "mat", "mat73", "folder"])
def test_every_arrays_format_gives_the_same_images(tmp_path, fmt):
    import h5py

    x, y = images_and_labels()
    path = tmp_path / {"folder": "arrays", "mat73": "f.mat"}.get(fmt, f"f.{fmt.split('-')[0]}")
    if fmt == "npz":
        np.savez(path, x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:])
    elif fmt == "npz-compressed":
        np.savez_compressed(path, x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:])
    elif fmt == "h5":
        with h5py.File(path, "w") as f:
            for key, value in dict(x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:]).items():
                f[key] = value
    elif fmt == "mat":
        from scipy.io import savemat

        savemat(path, dict(x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:]))
    elif fmt == "mat73":  # MATLAB 7.3: HDF5 behind a text header, each array's axes reversed
        with h5py.File(path, "w", userblock_size=512) as f:
            for key, value in dict(x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:]).items():
                f[key] = np.ascontiguousarray(value.T)
        with open(path, "r+b") as f:
            f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64")
    else:
        path.mkdir()
        for key, value in dict(x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:]).items():
            np.save(path / f"{key}.npy", value)
    data = make_data(f"arrays:{path}", load_spec(spec_doc(classes=2)), normalize="none")
    assert (len(data.train), len(data.test), data.classes) == (15, 5, 2)
    images, labels = stacked(data.test)
    assert torch.equal(images, torch.from_numpy(x[15:])) and labels.tolist() == y[15:].tolist()
    assert torch.equal(data.train[3][0], torch.from_numpy(x[3]))


def test_arrays_split_by_a_stratified_fraction_drawn_by_the_seed(tmp_path):
    x, y = images_and_labels(40, (8, 8))  # (N, H, W): one channel
    np.savez(tmp_path / "a.npz", images=(x * 255).astype(np.uint8), labels=y)
    spec = load_spec(spec_doc(classes=2))
    data = make_data(f"arrays:{tmp_path / 'a.npz'}", spec, test_split=0.25, seed=3)
    test_labels = stacked(data.test)[1]
    assert len(data.test) == 10 and sorted(test_labels.tolist()) == [0] * 5 + [1] * 5
    again = make_data(f"arrays:{tmp_path / 'a.npz'}", spec, test_split=0.25, seed=3)
    other = make_data(f"arrays:{tmp_path / 'a.npz'}", spec, test_split=0.25, seed=4)
    assert data.test.source.indices == again.test.source.indices != other.test.source.indices
    assert float(stacked(data.plain_train)[0].max()) > 1  # bytes scaled to [0, 1], then normalised


def test_arrays_keys_are_named_or_found(tmp_path):
    x, y = images_and_labels()
    np.savez(tmp_path / "a.npz", stimuli=x, category=y)
    spec = load_spec(spec_doc(classes=2))
    with pytest.raises(DataError, match=r"a.npz has no labels under y or labels or Y or targets or target \(nor "
                                        r"y_train and y_test\); it holds category, stimuli; name them with "
                                        r"--data-keys IMAGES,LABELS$"):
        make_data(f"arrays:{tmp_path / 'a.npz'}", spec)
    assert len(make_data(f"arrays:{tmp_path / 'a.npz'}", spec, keys="stimuli,category").train) == 16
    with pytest.raises(DataError, match=r"--data-keys 'stimuli' names the images and the labels: IMAGES,LABELS$"):
        make_data(f"arrays:{tmp_path / 'a.npz'}", spec, keys="stimuli")


@pytest.mark.parametrize("arrays, frames, message", [
    (dict(x=np.zeros((4, 2, 1, 8, 8)), y=np.zeros(4)), False,
     r"x has shape \(4, 2, 1, 8, 8\); expected \(N, C, H, W\) or \(N, H, W\); a spec whose input is a sequence "
     r"takes sequences$"),
    (dict(x=np.zeros((4, 8, 8)), y=np.zeros(4)), True,
     r"x has shape \(4, 8, 8\); expected \(N, T, C, H, W\) or \(N, T, H, W\)$"),
    (dict(x=np.zeros((4, 8)), y=np.zeros(4)), False, r"x has shape \(4, 8\); expected \(N, C, H, W\) or \(N, H, W\)$"),
    (dict(x=np.zeros((4, 1, 8, 8)), y=np.zeros(3)), False,
     r"y has shape \(3,\); expected \(4,\), a label for each of x's 4 images$"),
    (dict(x=np.zeros((4, 1, 8, 8)), y=np.array([0, 1, -1, 0])), False,
     r"y must hold class numbers 0, 1, 2, ... \(it holds int64 from -1 to 1\)$"),
    (dict(x=np.zeros((4, 1, 8, 8)), y=np.array([0, 0.5, 1, 0])), False,
     r"y must hold class numbers 0, 1, 2, ... \(it holds float64 from 0.0 to 1.0\)$"),
    (dict(x_train=np.zeros((4, 1, 8, 8)), y=np.zeros(4), x_test=np.zeros((2, 1, 8, 8))), False,
     r"x and y must both be split into _train and _test arrays, or neither$"),
])
def test_arrays_that_do_not_fit_name_the_file_the_key_and_the_shape(tmp_path, arrays, frames, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=f"^{tmp_path / 'bad.npz'}: {message}"):
        make_data(f"arrays:{tmp_path / 'bad.npz'}", load_spec(spec_doc(frames=frames)))


def test_arrays_files_that_cannot_be_read_are_one_line(tmp_path):
    spec = load_spec(spec_doc())
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 8, 8)))
    with pytest.raises(DataError, match=r"x.npy holds one array; put the images and labels in an .npz "
                                        r"\(numpy.savez\(FILE, x=images, y=labels\)\) or as x.npy and y.npy in a "
                                        r"folder, and give arrays:THAT$"):
        make_data(f"arrays:{tmp_path / 'x.npy'}", spec)
    with pytest.raises(DataError, match=r"gone.npz: no such file \(arrays:FILE reads"):
        make_data(f"arrays:{tmp_path / 'gone.npz'}", spec)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"broken.npz cannot be read \(File is not a zip file\)$"):
        make_data(f"arrays:{tmp_path / 'broken.npz'}", spec)
    (tmp_path / "f.csv").write_text("1,2\n")
    with pytest.raises(DataError, match=r"f.csv: arrays:FILE reads .npz, .h5, .hdf5 and .mat files, or a folder of "
                                        r".npy files$"):
        make_data(f"arrays:{tmp_path / 'f.csv'}", spec)
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4))
    with pytest.raises(DataError, match=r"objects.npz cannot be read \(x.npy holds Python objects, which are not "
                                        r"read\)$"):
        make_data(f"arrays:{tmp_path / 'objects.npz'}", spec)


# --- what each image goes through --------------------------------------------------------------------------


def test_normalize_takes_each_form_and_refuses_others(tmp_path):
    spec = load_spec(spec_doc(channels=3))
    assert TrainConfig(spec="x", normalize=[0.5, 0.25]).normalize == "0.5,0.25"
    assert TrainConfig(spec="x", normalize=[[0.1, 0.2, 0.3], [1, 2, 4]]).normalize == "0.1/0.2/0.3,1.0/2.0/4.0"
    data = make_data("synthetic", spec, normalize="0.1/0.2/0.3,1/2/4")
    raw = make_data("synthetic", spec, normalize="none")
    expected = (raw.test[0][0] - torch.tensor([0.1, 0.2, 0.3])[:, None, None]) / torch.tensor([1., 2, 4])[:, None, None]
    assert torch.allclose(data.test[0][0], expected)
    for bad, message in [("0.5", r"normalize '0.5' is none, imagenet, computed or MEAN,STD"),
                         ("0.5,0", r"normalize '0.5,0': means must be finite and deviations positive"),
                         ("1/2,1/2/3", r"normalize '1/2,1/2/3' gives 2 means and 3 deviations")]:
        with pytest.raises(ValueError, match=f"^{message}"):
            TrainConfig(spec="x", normalize=bad)
    with pytest.raises(DataError, match=r"normalize gives 2 values per channel but the spec's input has 3 channels$"):
        make_data("synthetic", spec, normalize="1/2,1/2")
    assert main(["train", "x", "--normalize", "0.5"]) == 2


def test_augmentation_draws_once_for_all_of_a_sequence_s_frames():
    from cortexgraph.train.preprocess import Preprocess

    frames = torch.arange(3 * 64, dtype=torch.float32).reshape(3, 1, 8, 8)
    frames = frames - frames.mean((1, 2, 3), keepdim=True)  # each frame the same image, shifted by a constant
    for augment in ("flip", "crop", "imagenet"):
        prepare = Preprocess(1, (8, 8), augment, train=True)
        torch.manual_seed(0)
        for _ in range(10):
            out = prepare(frames)
            assert out.shape == (3, 1, 8, 8) and torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
    assert torch.equal(Preprocess(1, (8, 8), "crop")(frames), frames)  # test images are never augmented


def test_rgb_becomes_greyscale_as_pil_makes_it_and_grey_is_repeated():
    from cortexgraph.train.preprocess import adapt_channels

    rgb = torch.rand(3, 4, 4)
    grey = adapt_channels(rgb, 1)
    assert torch.allclose(grey[0], 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    assert torch.equal(adapt_channels(grey, 3), grey.expand(3, 4, 4))


def test_the_run_says_its_data_augmentation_and_normalisation(tmp_path, capsys):
    spec = write_spec(tmp_path, channels=1, classes=10)
    assert main(["train", spec, "--data", "digits", "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--limit-batches", "1", "--augment", "flip"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("data digits: 1,437 training and 360 test images, augment flip, normalize computed (mean ")
    settings = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["settings"]
    # Kept as chosen, the computed normalisation as the numbers found: a resumed run, and new stimuli given to
    # evaluate or features, are normalised as the training images were, not by their own statistics.
    mean, std = (float(v) for v in settings["normalize"].split(","))
    assert settings["augment"] == "flip" and f"(mean {mean:.4g}, std {std:.4g})" in first
    other = tmp_path / "other.npz"
    np.savez(other, x=np.full((20, 1, 8, 8), 0.9, np.float32), y=np.arange(20) % 2)
    from cortexgraph.cli import build_parser
    from cortexgraph.commands import _model_and_data

    args = build_parser().parse_args(["evaluate", str(tmp_path / "run" / "checkpoint.pt"), "--data", f"arrays:{other}"])
    _, data, _ = _model_and_data(args)
    assert torch.allclose(data.test[0][0], torch.full((1, 8, 8), (0.9 - mean) / std))


def test_memory_stays_flat_in_image_size_and_steps(tmp_path):
    """The peak memory of making a data set and reading an item, at 16 px and 3 steps against 256 px and 200
    steps of sequences: the raw digits are all that is held besides the item (52 MB); made whole, the set
    would be 75 GB."""
    script = """
import json, resource, sys
from cortexgraph.spec import load_spec
from cortexgraph.train.data import make_data
size, steps = int(sys.argv[1]), int(sys.argv[2])
doc = json.loads(sys.argv[3])
data = make_data("digits-moving", load_spec(doc))
x = data.train[0][0]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, x.numel() * 4)
"""
    peaks = []
    for size, steps in ((16, 3), (256, 200)):
        doc = spec_doc(size=size, frames=True) | {"steps": steps}
        out = subprocess.run([sys.executable, "-c", script, str(size), str(steps), json.dumps(doc)], check=True,
                             capture_output=True, text=True).stdout.split()
        peaks.append((int(out[0]), int(out[1])))
    (small, _), (large, one_sequence) = peaks
    # The excess is a few sequences. worth (sliding makes each frame), nothing in proportion to the set.
    assert large - small < 4 * one_sequence + (200 << 20)


def test_a_checkpoint_from_before_the_settings_is_evaluated_on_images_prepared_as_it_trained(tmp_path):
    from cortexgraph.train.data import saved_data_settings

    assert saved_data_settings({"data": "imagefolder:/x"})["augment"] == "imagenet"
    assert saved_data_settings({"data": "imagefolder:/x"})["normalize"] == "imagenet"
    assert saved_data_settings({"data": "cifar10"})["normalize"] == "0.4914/0.4822/0.4465,0.247/0.2435/0.2616"
    assert saved_data_settings({"data": "digits"})["normalize"] == "computed"
    assert saved_data_settings({"data": "digits", "augment": "flip"}) == {"data": "digits", "augment": "flip"}


def test_an_unreadable_image_stops_evaluate_and_features_in_one_line(tmp_path, capsys):
    from PIL import Image

    for part in ("train", "val"):
        for label in ("a", "b", "c"):
            (tmp_path / "imgs" / part / label).mkdir(parents=True)
            Image.new("L", (8, 8), 40).save(tmp_path / "imgs" / part / label / "0.png")
    (tmp_path / "imgs" / "val" / "a" / "bad.png").write_bytes(b"not a png")
    spec = write_spec(tmp_path, channels=1)
    data = f"imagefolder:{tmp_path / 'imgs'}"
    assert main(["evaluate", spec, "--data", data, "--normalize", "none"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "bad.png cannot be read as an image (" in err
    assert err.endswith("; mend it, or move it out of the folder\n")
    assert main(["features", spec, "--data", data, "--normalize", "none", "--at", "B.t2",
                 "--out", str(tmp_path / "f")]) == 2
    assert "bad.png cannot be read as an image" in capsys.readouterr().err


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((4, 8, 8, 3), np.uint8), y=np.zeros(4)),
     r"x has shape \(4, 8, 8, 3\), channels last; expected \(N, C, H, W\) or \(N, H, W\) \(numpy.moveaxis\(x, -1, "
     r"-3\) puts the channels first\)$"),
    (dict(x=np.zeros((4, 1, 8, 8)), y=np.array(["a", "b", "a", "b"])),
     r"y must hold class numbers 0, 1, 2, ... \(it holds <U1\)$"),
    (dict(x=np.full((4, 1, 8, 8), np.nan), y=np.zeros(4)),
     r"the training images hold NaN or infinite values; mend them"),
])
def test_arrays_a_user_may_get_wrong_first(tmp_path, arrays, message):
    np.savez(tmp_path / "odd.npz", **arrays)
    with pytest.raises(DataError, match=message):
        make_data(f"arrays:{tmp_path / 'odd.npz'}", load_spec(spec_doc()), test_split=0.5)


def test_the_computed_statistics_are_read_in_blocks_of_bounded_size(tmp_path):
    from cortexgraph.train.sources import Images

    images = Images(torch.zeros(10, 3, 100, 100), torch.zeros(10))
    assert [len(b) for b in images.blocks(held=3 * 120_000)] == [3, 3, 3, 1]  # 120 kB an image
    assert [len(b) for b in images.blocks(held=1)] == [1] * 10
