"""Every file a user gets is one they can trust (issue 27): nothing written through a link or over a device,
nothing replaced that the user did not name, features written whole, by one writer, size-checked first; the
data sets and weight files that would cost too much refused before they cost it; one line for every failure;
models that are not finite refused on loading. Each test failed before its fix."""

import errno
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import cortexgraph.atomic as atomic
from cortexgraph import SpecError, build, compile, load_spec
from cortexgraph.atomic import OutputError, atomic_path, check_target
from cortexgraph.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from cortexgraph.cli import main
from cortexgraph.feature_files import FeaturesError, read_features
from cortexgraph.lock import InUse, Lock
from cortexgraph.train import RefusedRun, train

from .helpers import poison_one_training_image
from .test_train import TINY, config


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


@pytest.fixture
def victim(tmp_path):
    """A file of the user's that a planted link points to: it must stay as it is."""
    path = tmp_path / "precious.txt"
    path.write_text("the user's data\n")
    return path


def untouched(victim: Path) -> bool:
    return victim.read_text() == "the user's data\n"


def one_line(text: str) -> str:
    (line,) = text.strip().splitlines()
    assert line.startswith("cortexgraph: ")
    return line


# --- nothing written through a link or over a device, nothing replaced the user did not name ---------


def test_an_atomic_write_refuses_links_folders_and_devices(tmp_path, victim):
    link, fifo = tmp_path / "link", tmp_path / "fifo"
    link.symlink_to(victim)
    os.mkfifo(fifo)
    for target, what in [(link, f"it is a symbolic link (to {victim}); cortexgraph never writes through a link"),
                         (fifo, "it is a pipe, not a file"), (tmp_path, "it is a folder, not a file"),
                         (Path("/dev/null"), "it is a character device, not a file")]:
        with pytest.raises(OutputError, match=re.escape(f"cannot write {target}: {what}")):
            check_target(target)
    with pytest.raises(OutputError, match="it is a symbolic link"), atomic_path(link) as tmp:
        Path(tmp).write_text("new")
    assert untouched(victim) and link.is_symlink() and stat.S_ISFIFO(fifo.stat().st_mode)
    assert not list(tmp_path.glob(".*.tmp"))


def test_draw_writes_over_no_device_and_to_standard_output_only_when_asked(tiny, tmp_path, capsysbinary):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["draw", tiny, "-o", str(fifo), "--format", "dot"]) == 2
    assert one_line(capsysbinary.readouterr().err.decode()) == (
        f"cortexgraph: cannot write {fifo}: it is a pipe, not a file; -o - writes to standard output")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert main(["draw", tiny, "-o", "-", "--format", "png"]) == 0
    assert capsysbinary.readouterr().out.startswith(b"\x89PNG")


def test_draw_replaces_only_a_file_the_user_named(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("tiny-rolled.svg").write_text("mine")
    assert main(["draw", tiny]) == 2
    assert one_line(capsys.readouterr().err) == (
        "cortexgraph: cannot write tiny-rolled.svg: it already exists; it is the default name: replace it with "
        "-o tiny-rolled.svg, or write -o another name")
    assert Path("tiny-rolled.svg").read_text() == "mine"
    assert main(["draw", tiny, "-o", "tiny-rolled.svg"]) == 0
    assert Path("tiny-rolled.svg").read_text().startswith("<?xml")


def test_draw_refuses_a_format_that_its_file_name_contradicts(tiny, tmp_path, capsys):
    assert main(["draw", tiny, "-o", str(tmp_path / "g.png"), "--format", "svg"]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"cortexgraph: cannot write svg into {tmp_path}/g.png: its suffix says png; name it {tmp_path}/g.svg, or "
        "leave out --format")
    assert not (tmp_path / "g.png").exists()


def test_a_full_device_is_one_line_before_or_while_writing(tiny, tmp_path, monkeypatch, capsys):
    import shutil

    full = shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: full)
    assert main(["draw", tiny, "-o", str(tmp_path / "g.svg")]) == 2
    assert "needs about" in one_line(capsys.readouterr().err) and not (tmp_path / "g.svg").exists()
    monkeypatch.undo()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    assert main(["draw", tiny, "-o", str(tmp_path / "g.svg")]) == 1
    assert one_line(capsys.readouterr().err) == f"cortexgraph: cannot write {tmp_path}/g.svg: No space left on device"
    assert not list(tmp_path.glob("*.svg")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("command", [["schema"], ["validate", "demo/frnn3-digits"], ["specs"],
                                     ["draw", "demo/frnn3-digits", "-o", "-", "--format", "dot"]])
def test_standard_output_on_a_full_device_is_one_line(command):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "cortexgraph", *command], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert done.returncode == 1
    assert one_line(done.stderr) == "cortexgraph: cannot write to standard output: No space left on device"


@pytest.mark.parametrize("name", [".cortexgraph.owner", ".cortexgraph.lock", "checkpoint.pt", "metrics.json"])
def test_a_link_planted_in_a_run_folder_is_refused_and_never_written_through(tiny, tmp_path, victim, name):
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(victim)
    with pytest.raises(RefusedRun, match=f"cannot write {out / name}: it is a symbolic link"):
        train(config(tiny, out, epochs=1, overwrite=name.endswith((".pt", ".json"))))  # else: "holds a run"
    assert untouched(victim) and (out / name).is_symlink()


def test_the_run_s_write_probe_follows_no_link(tiny, tmp_path, victim):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".cortexgraph-write-test").symlink_to(victim)  # once written through, then deleted
    train(config(tiny, out, epochs=1))
    assert untouched(victim) and (out / ".cortexgraph-write-test").is_symlink()


def test_a_refused_run_leaves_no_folder_behind(tiny, tmp_path, capsys):
    out = tmp_path / "runs" / "new"
    assert main(["train", tiny, "--out", str(out), "--classes", "4", "--data", "digits", "--quiet"]) == 2
    assert "reads out 4 classes but digits has 10" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


def test_a_run_refused_for_its_settings_exits_2(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1))
    assert main(["train", tiny, "--data", "synthetic", "--out", str(out), "--epochs", "2", "--resume", "--lr", "0.5",
                 "--quiet"]) == 2
    assert "cannot resume" in one_line(capsys.readouterr().err)


def checkpoint_with(tmp_path: Path, spec: str = TINY, **settings) -> Path:
    """A checkpoint of a freshly built spec, with the settings given."""
    model = build(spec)
    path = tmp_path / "model.pt"
    save_checkpoint(path, spec=model.spec.to_dict(), model=model.state_dict(), settings=settings)
    return path


def test_a_checkpoint_s_settings_never_decide_where_evaluate_writes(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere" / "deep" / "sub"
    spec = TINY.replace("size: 8}", "size: 32}", 1).replace("size: 8}", "size: 32}").replace("size: 4}", "size: 16}")
    path = checkpoint_with(tmp_path, spec, data="cifar10", data_dir=str(elsewhere))
    assert main(["evaluate", str(path)]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"cortexgraph: cifar10 is not in {elsewhere} (the checkpoint's data_dir, read but never written to); pass "
        "--data-dir to name where it is (with --download to fetch it there)")
    assert main(["evaluate", str(path), "--download"]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"cortexgraph: --download writes only where --data-dir names (the checkpoint's data_dir, {elsewhere}, is "
        "read, never written to)")
    assert not (tmp_path / "elsewhere").exists()


def test_a_checkpoint_s_settings_are_validated_as_flags_are(tmp_path, capsys):
    path = checkpoint_with(tmp_path, data=42)
    assert main(["evaluate", str(path)]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"cortexgraph: {path}: its settings cannot be used (data: input should be a valid string)")


def test_evaluate_s_json_output_is_checked_before_the_evaluation(tiny, tmp_path, capsys):
    assert main(["evaluate", tiny, "--data", "synthetic", "--json", str(tmp_path)]) == 2
    assert one_line(capsys.readouterr().err) == f"cortexgraph: cannot write {tmp_path}: it is a folder, not a file"
    assert main(["evaluate", tiny, "--data", "synthetic", "--json", str(tmp_path / "rows.json")]) == 0
    assert len(json.loads((tmp_path / "rows.json").read_text())) == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
@pytest.mark.parametrize("command", ["evaluate", "features"])
def test_a_gpu_asked_for_where_there_is_none_is_one_line(tiny, tmp_path, capsys, command):
    args = ["--at", "B.t3", "--out", str(tmp_path / "f")] if command == "features" else []
    assert main([command, tiny, "--data", "synthetic", "--device", "cuda", *args]) == 2
    assert one_line(capsys.readouterr().err) == ("cortexgraph: --device cuda asked for, but CUDA is not available "
                                                 "here; use --device cpu")
    assert not (tmp_path / "f").exists()


# --- features as safe as a run folder --------------------------------------------------------------------


def features(tiny, out, *more, at=("B.t3",)) -> list[str]:
    return ["features", tiny, "--data", "synthetic", "--at", *at, "--out", str(out), *more]


@pytest.mark.parametrize("name", ["f", "f.h5"])
def test_features_replace_an_output_only_when_asked_and_only_once_complete(tiny, tmp_path, capsys, name):
    out = tmp_path / name
    assert main(features(tiny, out, "--limit", "10", at=("B.t3", "A.t1"))) == 0
    before, _ = read_features(out)
    assert before["names"] == ["B.t3", "A.t1"] and before["complete"] is True
    assert main(features(tiny, out)) == 2
    assert "replace it with --overwrite (once the new features are complete)" in one_line(capsys.readouterr().err)
    assert read_features(out)[0] == before
    assert main(features(tiny, out, "--overwrite")) == 0
    meta, arrays = read_features(out)
    assert meta["names"] == ["B.t3"] and arrays["B.t3"].shape == (256, 8, 4, 4)
    if name == "f":  # the replaced output's array that the new one lacks is gone; nothing else is there
        assert sorted(p.name for p in out.iterdir()) == ["B.t3.npy", "features.json", "labels.npy"]


def test_links_in_a_features_folder_are_refused_even_with_overwrite(tiny, tmp_path, capsys, victim):
    out = tmp_path / "f"
    out.mkdir()
    (out / "B.t3.npy").symlink_to(victim)
    for more in ([], ["--overwrite"]):
        assert main(features(tiny, out, *more)) == 2
        capsys.readouterr()
    (out / "B.t3.npy").unlink()
    (out / "features.json").symlink_to(victim)
    assert main(features(tiny, out, "--overwrite")) == 2
    assert "features.json: it is a symbolic link" in one_line(capsys.readouterr().err)
    assert untouched(victim)


@pytest.mark.parametrize("name", ["f", "f.h5"])
def test_a_second_writer_is_refused_and_told_who_holds_the_output(tiny, tmp_path, capsys, name):
    out = tmp_path / name
    if name == "f":
        out.mkdir()
    lock = Lock(out / ".cortexgraph.lock" if name == "f" else tmp_path / ".f.h5.lock", str(out))
    lock.hold("writer")
    try:
        assert main(features(tiny, out)) == 2
        assert one_line(capsys.readouterr().err) == (
            f"cortexgraph: {out} is in use by another writer (process {os.getpid()} on {os.uname().nodename}, "
            f"since {json.loads(lock.owner.read_text())['since']}); wait for it to end, or choose another --out")
    finally:
        lock.release()
    assert main(features(tiny, out)) == 0


KILLED_WRITER = """
import sys, time
from pathlib import Path
import cortexgraph.extract as extract

real = extract.features
calls = [0]

def features(*args, **kwargs):  # the first batch written, the writer is killed in the second
    calls[0] += 1
    if calls[0] == 2:
        Path(sys.argv[1]).write_text("written")
        time.sleep(60)
    return real(*args, **kwargs)

extract.features = features
from cortexgraph.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("name", ["f", "f.h5"])
def test_a_killed_writer_leaves_the_old_output_whole_and_nothing_that_looks_complete(tiny, tmp_path, name):
    out, old, marker = tmp_path / name, tmp_path / f"old-{name}", tmp_path / "marker"
    driver = tmp_path / "driver.py"
    driver.write_text(KILLED_WRITER)
    assert main(features(tiny, old, "--limit", "10")) == 0
    kept = read_features(old)[1]["B.t3"].copy()
    for target, more in ((out, []), (old, ["--overwrite"])):
        marker.unlink(missing_ok=True)
        writer = subprocess.Popen([sys.executable, str(driver), str(marker), *features(tiny, target, "--batch-size",
                                                                                      "64", *more)])
        deadline = time.monotonic() + 120
        while not marker.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    with pytest.raises(FeaturesError, match="no such file" if name == "f.h5" else
                       r"holds no complete features: it has no features.json \(a writer is at work there, or was "
                       r"stopped\)"):
        read_features(out)  # a folder of arrays beside an old features.json once loaded as complete
    np.testing.assert_array_equal(read_features(old)[1]["B.t3"], kept)  # the --overwrite was killed: old is whole
    assert main(features(tiny, out)) == 0  # the killed writer's leftovers are cleared by the next one
    assert read_features(out)[0]["images"] == 256
    assert not list(tmp_path.glob(f".{name}.*.tmp")) and not (out / ".cortexgraph-partial").exists()
    lock = out / ".cortexgraph.lock" if name == "f" else tmp_path / f".{name}.lock"
    assert not lock.exists()  # the killed writer's lock file too, once the next writer is done


def test_a_full_disk_refuses_features_before_the_first_batch_and_fails_in_one_line_after(tiny, tmp_path, capsys,
                                                                                        monkeypatch):
    import shutil

    import cortexgraph.feature_files as feature_files

    assert main(features(tiny, tmp_path / "old", "--limit", "10")) == 0
    full = shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: full)
    assert main(features(tiny, tmp_path / "f")) == 2
    assert one_line(capsys.readouterr().err) == (f"cortexgraph: cannot write the features of 256 images: it needs "
                                                 f"about 198.7 kB and {tmp_path} has 1.0 kB free")
    assert not (tmp_path / "f").exists()
    monkeypatch.undo()
    real, writes = feature_files._NpyFolder.write, [0]

    def fills_up(self, name, chunk):
        writes[0] += 1
        if writes[0] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, name, chunk)

    monkeypatch.setattr(feature_files._NpyFolder, "write", fills_up)
    for target, more in ((tmp_path / "f", []), (tmp_path / "old", ["--overwrite"])):
        assert main(features(tiny, target, "--batch-size", "64", *more)) == 1
        writes[0] = 0
        assert "No space left on device (after 64 of 256 images); nothing was kept" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "f").exists() and read_features(tmp_path / "old")[0]["images"] == 10


def test_an_hdf5_write_that_fails_mid_way_is_one_line_not_a_crash(tiny, tmp_path):
    """HDF5 retried its failed writes from destructors (a flood of tracebacks) and crashed the process."""
    driver = tmp_path / "driver.py"
    driver.write_text("import resource, sys\nimport cortexgraph.feature_files as f\n"
                      "f.check_space = lambda *a, **k: None  # past the checks: the write itself fails\n"
                      "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))\n"
                      "from cortexgraph.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, str(driver), *features(tiny, tmp_path / "f.h5", "--batch-size", "64")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "File too large (after" in one_line(done.stderr) and "nothing was kept" in done.stderr
    assert not (tmp_path / "f.h5").exists() and not list(tmp_path.glob(".f.h5*"))


@pytest.mark.parametrize("name", ["f", "f.h5"])
def test_features_into_a_folder_that_cannot_be_written_are_one_line(tiny, tmp_path, capsys, monkeypatch, name):
    """A read-only folder (tests run as root, whom permissions do not stop: the refusal is made here)."""
    import tempfile
    from pathlib import Path as RealPath

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(RealPath, "mkdir", read_only)
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert main(features(tiny, tmp_path / name)) == 2
    assert one_line(capsys.readouterr().err) == f"cortexgraph: cannot write {tmp_path / name}: Permission denied"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


@pytest.mark.parametrize("more, message", [
    (["--at", "B.t1000000000"], "a run of 1,000,000,000 steps exceeds the limit of 1,000 steps"),
    (["--limit", "0"], "argument --limit: must be at least 1; got 0"),
    (["--limit", "-5"], "argument --limit: must be at least 1; got -5"),
    (["--batch-size", "0"], "argument --batch-size: must be at least 1; got 0"),
    (["--limit", "ten"], "argument --limit: 'ten' is not a whole number"),
])
def test_feature_settings_that_cannot_work_are_refused_before_anything_is_written(tiny, tmp_path, capsys, more,
                                                                                   message):
    with pytest.raises(SystemExit) if "argument" in message else _nothing():
        assert main(features(tiny, tmp_path / "f", *more)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_an_empty_split_writes_nothing(tiny, tmp_path):
    from cortexgraph.extract import write_features

    with pytest.raises(ValueError, match="there are no images to write the features of"):
        write_features(build(TINY), [], ["B.t3"], tmp_path / "f")
    assert not (tmp_path / "f").exists()


def test_a_dry_run_says_what_would_be_written_and_writes_nothing(tiny, tmp_path, capsys):
    assert main(features(tiny, tmp_path / "f", "--dry-run", at=("B.t3", "A.all"))) == 0
    assert capsys.readouterr().out.strip() == (
        f"would write the features of 256 images to {tmp_path}/f: B.t3 8x4x4, A.t0 4x8x8, A.t1 4x8x8, A.t2 4x8x8, "
        "A.t3 4x8x8, and the labels; about 1.2 MB")
    assert not (tmp_path / "f").exists()


def test_overwrite_removes_only_the_arrays_of_the_old_output_in_its_folder(tiny, tmp_path, victim):
    """A manifest naming `../precious` once had --overwrite delete a file outside the output."""
    out = tmp_path / "f"
    assert main(features(tiny, out, "--limit", "10")) == 0
    (tmp_path / "precious.npy").write_bytes(b"keep")
    meta = json.loads((out / "features.json").read_text())
    (out / "features.json").write_text(json.dumps(meta | {"names": ["../precious", str(tmp_path / "precious")]}))
    (out / "notes.txt").write_text("mine")
    assert main(features(tiny, out, "--overwrite", at=("A.t1",))) == 0
    assert (tmp_path / "precious.npy").read_bytes() == b"keep" and (out / "notes.txt").read_text() == "mine"
    assert read_features(out)[0]["names"] == ["A.t1"]


def test_a_commit_cut_short_leaves_no_output_that_looks_complete(tiny, tmp_path, monkeypatch):
    """Replacing a folder is renames, the old manifest first, the new one last: cut between them (as by
    SIGKILL), the folder has no manifest, and readers refuse it; Ctrl-C is held off until they are done."""
    import cortexgraph.feature_files as feature_files

    out = tmp_path / "f"
    assert main(features(tiny, out, "--limit", "10", at=("B.t3", "A.t1"))) == 0
    real, calls = os.replace, [0]

    def killed(src, dst):
        calls[0] += 1
        if calls[0] == 2:
            raise SystemExit(137)
        real(src, dst)

    monkeypatch.setattr(feature_files.os, "replace", killed)
    with pytest.raises(SystemExit):
        main(features(tiny, out, "--overwrite", at=("B.t3", "A.t1")))
    with pytest.raises(FeaturesError, match="holds no complete features: it has no features.json"):
        read_features(out)  # B.t3 new, A.t1 and labels old: once a mix that loaded
    finished = []
    # Ctrl-C as a terminal gives it (Python's handler, not blocked), whatever the process started with: a
    # shell starts a command in the background (`make test &`) with SIGINT ignored, and Python keeps that.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        with pytest.raises(KeyboardInterrupt):  # delivered once the renames are done
            with atomic.uninterrupted():
                # To this thread: sent to the process, the signal may go to another of its threads (a library's,
                # left by an earlier test), which a loaded machine may not run within the sleep below.
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                time.sleep(0.05)
                finished.append(True)  # not reached, were Ctrl-C not held off
    finally:
        signal.signal(signal.SIGINT, before)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    assert finished


def test_a_data_set_that_gives_fewer_images_than_its_length_writes_nothing(tmp_path):
    from cortexgraph.extract import write_features

    class Short(torch.utils.data.IterableDataset):
        def __len__(self):
            return 10

        def __iter__(self):
            return iter([(torch.randn(3, 8, 8), 0)] * 5)

    with pytest.raises(FeaturesError, match="the data gave 5 images for B.t3 where its length says 10"):
        write_features(build(TINY), Short(), ["B.t3"], tmp_path / "f")
    assert not (tmp_path / "f").exists()


def test_two_processes_never_hold_one_lock_at_once(tmp_path):
    """The lock file goes when its holder lets go; a process that opened it just before holds a file nobody
    else opens, sees so and tries again (filelock's lock files, removed so, once let two in at once)."""
    script = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from cortexgraph.lock import InUse, Lock
        lock, inside, end = Lock(Path({str(tmp_path)!r}) / ".x.lock", "x"), Path({str(tmp_path)!r}) / "inside", \
            time.monotonic() + 2
        while time.monotonic() < end:
            try:
                lock.hold("writer")
            except InUse:
                continue
            os.close(os.open(inside, os.O_CREAT | os.O_EXCL))  # FileExistsError: two holders at once
            os.unlink(inside)
            lock.release()
        """)
    runs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, errors


def test_a_lock_never_writes_through_a_hard_link_blocks_on_a_pipe_or_removes_another_s_file(tmp_path, victim):
    import shutil

    out = tmp_path / "run"
    out.mkdir()
    os.link(victim, out / ".cortexgraph.owner")  # O_NOFOLLOW stops symbolic links only
    lock = Lock.in_folder(out)
    lock.hold()
    lock.release()
    assert untouched(victim)
    os.mkfifo(out / ".cortexgraph.lock")  # once: every features write (and its dry run) hung on opening it
    with pytest.raises(OutputError, match=r"cannot write .*run: .*\.cortexgraph\.lock is not a file"):
        Lock.in_folder(out).check_free()
    with pytest.raises(OutputError, match="is not a file"):
        Lock.in_folder(out).hold()
    os.unlink(out / ".cortexgraph.lock")
    first, second = Lock.in_folder(out), Lock.in_folder(out)
    first.hold()
    shutil.rmtree(out)  # the folder removed and made again while the first holds its old lock
    out.mkdir()
    second.hold()
    first.release()  # once removed the second's lock file: a third process then got in
    with pytest.raises(InUse):
        Lock.in_folder(out).hold()
    second.release()


def test_a_dry_run_is_refused_where_another_writer_holds_the_output(tiny, tmp_path, capsys):
    out = tmp_path / "f"
    out.mkdir()
    lock = Lock(out / ".cortexgraph.lock", str(out))
    lock.hold("writer")
    try:
        assert main(features(tiny, out, "--dry-run")) == 2
        assert "is in use by another writer" in one_line(capsys.readouterr().err)
    finally:
        lock.release()


def test_an_hdf5_output_gets_the_usual_permissions_and_its_folders(tiny, tmp_path):
    out = tmp_path / "new" / "deep" / "f.h5"
    assert main(features(tiny, out)) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # (mkstemp's 0600 once)


def test_digits_at_any_size_are_standardised_as_the_resized_set_would_be():
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    from cortexgraph.train.data import make_data, stacked

    doc = load_spec(TINY).to_dict() | {"input": {"channels": 3, "size": 24}}
    doc["areas"] = {"A": {"channels": 4, "size": 24}, "B": {"channels": 8, "size": 12}}
    images, _ = stacked(make_data("digits", load_spec(doc)).test)
    whole = F.interpolate(torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16, size=(24, 24),
                          mode="bilinear", align_corners=False)  # what was built up front before
    mean, std = float(whole.mean()), float(whole.std())
    assert abs(float(images.mean()) - 0) < 0.05 and abs(float(images.std()) - 1) < 0.05
    some = (whole[:5] - mean) / std
    assert images.shape[1:] == (3, 24, 24) and torch.allclose(images[:, :1].std(), torch.tensor(
        float(images[:, :1].std())))  # the three channels are one image repeated
    from cortexgraph.train.preprocess import moments

    (m,), (s,) = moments([torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16], (24, 24), 1)
    assert abs(m - mean) < 1e-6 and abs(s - std) < 1e-6 and some.shape == (5, 1, 24, 24)


# --- inputs that cost too much, before they cost it ----------------------------------------------------


def test_every_loader_of_weight_files_refuses_an_inflating_archive_from_its_listing(tmp_path, monkeypatch):
    from cortexgraph.interop import WeightMapError, load_cornet

    plain, bomb = tmp_path / "plain.pth", tmp_path / "bomb.pth"
    torch.save({"V1.conv.weight": torch.zeros(4_000_000)}, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry))
    monkeypatch.setattr("cortexgraph.checkpoint.torch.load", lambda *a, **k: pytest.fail("the bomb was read"))
    with pytest.raises(WeightMapError, match=r"bomb.pth is not a state dict torch.save wrote: \d+ of its entries are "
                                             r"compressed .*declaring 16,00\d,\d+ bytes"):
        load_cornet("cornet-z", bomb)


def test_missing_files_and_devices_are_named_as_such(tmp_path):
    from cortexgraph.interop import WeightMapError, read_state_dict

    with pytest.raises(WeightMapError, match=r"gone.pt: no such file$"):
        read_state_dict(tmp_path / "gone.pt")
    with pytest.raises(CheckpointError, match=r"^/dev/zero is not a file \(it is a device\)$"):
        read_checkpoint("/dev/zero")


def test_data_sets_shape_each_image_when_it_is_asked_for(monkeypatch):
    from cortexgraph.train.data import DataError, check_batch, make_data

    doc = load_spec(TINY).to_dict() | {"input": {"channels": 1, "size": 1024}, "areas": {
        "A": {"channels": 4, "size": 1024}, "B": {"channels": 8, "size": 512}}}
    data = make_data("digits", load_spec(doc))  # once 7.5 GB up front
    assert data.train.source.images.shape[-2:] == (8, 8) and data.train[0][0].shape == (1, 1024, 1024)
    moving = load_spec(doc | {"steps": 1000, "input": {"channels": 1, "size": 1024, "stimulus": {"frames": "hold"}},
                              "inputs": {"A": "every"}})
    data = make_data("digits-moving", moving)  # ~23 GB up front once
    assert data.test.frames == 1001 and data.test.source.images.shape[-2:] == (8, 8)
    with pytest.raises(DataError, match=r"a batch of 128 inputs of 1,001 frames of 1x1024x1024 takes 537.4 GB, more "
                                        r"than this machine's"):
        check_batch(moving, 128)
    synthetic = make_data("synthetic", load_spec(doc))
    assert synthetic.train[3][0].shape == (1, 1024, 1024)
    assert torch.equal(synthetic.train[3][0], make_data("synthetic", load_spec(doc)).train[3][0])


# --- one line, never a traceback ---------------------------------------------------------------------------


def test_skipping_steps_works_for_a_model_without_norm_statistics(tmp_path, monkeypatch):
    """As the bundled ConvRNN streams: "Tensor list must have at least one tensor" once."""
    spec = tmp_path / "plain.yaml"
    spec.write_text(TINY.replace("conv: {out: 4}", "conv: {out: 4, norm: false}").replace(
        "head: {classes: 3}", "head: {classes: 3, norm: none}") + "defaults: {norm: none}\n")
    poison_one_training_image(monkeypatch)
    result = train(config(str(spec), tmp_path / "run", epochs=1, on_nonfinite="skip", limit_batches=None))
    assert not [b for b in build(result["checkpoint"]).buffers() if b.is_floating_point()]
    assert result["epochs"][0]["skipped_steps"] == 1


@pytest.mark.parametrize("params, message", [
    ("{tau: 1000, learn_tau: true}", None),
    ("{tau: 1.0e+300, dt: 1.0e-300}", r"tau \(1e\+300\) is more than float32 holds \(3.4e\+38\)"),
    ("{tau: 1.0e+30}", r"dt / tau is 1e-30: in float32, 1 - dt/tau rounds to 1, so the area would never change"),
])
def test_leaky_time_constants_are_checked_not_overflowed(params, message):
    text = f"""
    cortexgraph: 1
    name: leaky
    input: {{channels: 1, size: 4}}
    areas:
      A: {{channels: 2, size: 4, cell: {{leaky: {params}}}}}
    inputs: {{A: {{at: once, op: conv}}}}
    steps: 2
    readout: {{area: A, head: {{classes: 2}}}}
    """
    if message is None:
        model = build(textwrap.dedent(text))  # learn_tau at tau 1000 once overflowed in math.expm1
        torch.testing.assert_close(model.cells["A"].time_constant(), torch.tensor(1000.0))
        return
    with pytest.raises(SpecError, match=message):
        compile(textwrap.dedent(text))


def test_loss_weights_near_the_largest_float_are_weighed_not_overflowed():
    doc = load_spec(TINY).to_dict()
    doc["readout"] |= {"step": [2, 3], "loss": [1e308, 1e308]}
    model = build(doc)
    assert model.spec.loss_weights == (0.5, 0.5)
    x = torch.randn(4, 3, 8, 8)
    loss = model.loss(model(x, readout="steps"), torch.tensor([0, 1, 2, 0]))
    assert torch.isfinite(loss)


def test_pydantic_s_union_members_never_show_in_a_path(tmp_path, capsys):
    path = tmp_path / "loss.yaml"
    path.write_text(TINY.replace("readout: {area: B, head: {classes: 3}}",
                                 "readout: {area: B, step: [2, 3], head: {classes: 3}, loss: [-1, x]}"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "readout.loss[0]: must be >= 0.0, got -1" in err and "readout.loss[1]: expected a number" in err
    assert "list[" not in err


def test_a_cornet_loader_given_another_spec_names_what_is_missing():
    from cortexgraph.interop import WeightMapError, load_cornet

    with pytest.raises(WeightMapError, match="cornet-z does not express CORnet-S: V2 has no recurrence V2->V2"):
        load_cornet("cornet-s", {}, spec="cornet/cornet-z")


def stimulus_spec(stimulus: dict) -> dict:
    return {"cortexgraph": 1, "name": "seen", "steps": 3, "input": {"channels": 2, "size": 8, "stimulus": stimulus},
            "prenet": [{"conv": {"out": 3}}], "areas": {"A": {"channels": 4, "size": 8}},
            "inputs": {"A": {"at": "every", "op": "conv"}}, "readout": {"area": "A", "head": {"classes": 3}}}


def test_a_mask_of_another_kind_than_the_image_is_one_message():
    from cortexgraph.model import InputError

    model = build(stimulus_spec({"show": [0, 2], "then": "mask"}))
    with pytest.raises(InputError, match=r"seen expects a mask of the input's kind \(torch.float32 on cpu\); got "
                                         r"torch.int64 on cpu"):
        model(torch.randn(2, 2, 8, 8), mask=torch.zeros(2, 2, 8, 8, dtype=torch.long))


@pytest.mark.parametrize("stimulus, shapes", [({"frames": "hold"}, {"x": (2, 4, 2, 8, 8)}),
                                              ({"show": [0, 2], "then": "mask"}, {"x": (2, 2, 8, 8),
                                                                                   "mask": (2, 2, 8, 8)})])
def test_sequence_and_mask_specs_export_with_the_inputs_they_take(tmp_path, capsys, stimulus, shapes):
    import yaml

    spec = tmp_path / "seen.yaml"
    spec.write_text(yaml.safe_dump(stimulus_spec(stimulus)))
    assert main(["compile", str(spec), "--json", "--export", str(tmp_path / "p.pt2")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["export"]["inputs"] == {k: ["batch", *v[1:]] for k, v in shapes.items()}
    x, extra = torch.randn(shapes["x"]), {k: torch.randn(v) for k, v in shapes.items() if k != "x"}
    program = torch.export.load(tmp_path / "p.pt2").module()
    assert program(x, **extra).shape == (2, 3) and program(x[:1], **{k: v[:1] for k, v in extra.items()}).shape == (
        1, 3)  # once "expects input of shape (batch, frames, 2, 8, 8) ...; got (s77, 2, 8, 8)"


# --- loaded models are checked -----------------------------------------------------------------------------


@pytest.fixture
def nan_checkpoint(tmp_path):
    model = build(TINY)
    state = model.state_dict()
    state["edges.A->B.conv.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    save_checkpoint(path, spec=model.spec.to_dict(), model=state, settings={"data": "synthetic"})
    return path


def test_a_model_that_is_not_finite_is_refused_on_loading(nan_checkpoint, tmp_path, capsys):
    with pytest.raises(CheckpointError, match=r"nan.pt: edges.A->B.conv.weight is not finite \(1 of its 288 values "
                                              r"are NaN or infinite\); such a model computes nothing useful"):
        build(str(nan_checkpoint))
    assert build(str(nan_checkpoint), allow_nonfinite=True).edges["A->B"].conv.weight.isnan().any()
    for command in (["evaluate"], ["features", "--at", "B.t3", "--out", str(tmp_path / "f")]):
        assert main([command[0], str(nan_checkpoint), *command[1:]]) == 2
        assert "edges.A->B.conv.weight is not finite" in one_line(capsys.readouterr().err)
    assert main(["evaluate", str(nan_checkpoint), "--allow-nonfinite"]) == 0


def test_interop_refuses_weights_that_are_not_finite():
    import torchvision

    from cortexgraph.interop import WeightMapError, load_torchvision

    weights = torchvision.models.resnet18().state_dict()
    weights["layer1.0.bn1.running_var"][3] = float("inf")
    with pytest.raises(WeightMapError, match="torchvision's weights: layer1.0.bn1.running_var is not finite"):
        load_torchvision("torchvision/resnet18", weights)
    load_torchvision("torchvision/resnet18", weights, allow_nonfinite=True)


def test_resuming_a_model_that_is_not_finite_is_refused(tiny, tmp_path):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1, schedule="constant"))
    payload = read_checkpoint(out / "checkpoint.pt")
    state = {k: v.clone() for k, v in payload["model"].items()}
    state["edges.A->B.conv.weight"].fill_(float("nan"))
    save_checkpoint(out / "checkpoint.pt", **{**payload, "model": state})
    with pytest.raises(CheckpointError, match=r"edges.A->B.conv.weight is not finite .*so it is not loaded \(a run "
                                              r"does not go on from it: start it again, or from another checkpoint\)"):
        train(config(tiny, out, epochs=2, schedule="constant", resume=True))  # (train has no --allow-nonfinite)


# --- the rest of the new messages ------------------------------------------------------------------------


def test_a_folder_that_cannot_be_written_is_refused_before_evaluate_evaluates(tiny, tmp_path, capsys, monkeypatch):
    import tempfile

    import cortexgraph.evaluate as evaluate

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)  # how check_target tries a folder
    monkeypatch.setattr(evaluate, "evaluate_exits", lambda *a, **k: pytest.fail("evaluated first"))
    assert main(["evaluate", tiny, "--data", "synthetic", "--json", str(tmp_path / "rows.json")]) == 2
    assert one_line(capsys.readouterr().err) == f"cortexgraph: cannot write {tmp_path}/rows.json: Read-only file system"


def test_a_file_size_limit_is_refused_before_the_first_batch(tiny, tmp_path, capsys, monkeypatch):
    import resource

    monkeypatch.setattr(atomic.resource, "getrlimit", lambda which: (1000, resource.RLIM_INFINITY))
    assert main(features(tiny, tmp_path / "f")) == 2
    assert one_line(capsys.readouterr().err) == (
        "cortexgraph: cannot write the features of 256 images: a file of it would take about 132.1 kB, past this "
        "process's limit on the size of files of 1.0 kB (ulimit -f)")
    assert not (tmp_path / "f").exists()


def test_features_out_naming_a_file_is_refused(tiny, tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    assert main(features(tiny, tmp_path / "f")) == 2
    assert one_line(capsys.readouterr().err) == (
        f"cortexgraph: {tmp_path}/f is a file; --out names a folder (or a file ending in .h5)")
    assert (tmp_path / "f").read_text() == "mine"


@pytest.mark.parametrize("name", ["f", "f.h5"])
def test_features_without_their_complete_mark_are_not_read(tiny, tmp_path, name):
    out = tmp_path / name
    assert main(features(tiny, out, "--limit", "10")) == 0
    if name == "f":
        meta = json.loads((out / "features.json").read_text())
        (out / "features.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "complete"}))
    else:
        import h5py

        with h5py.File(out, "r+") as f:
            f.attrs["features"] = json.dumps({"names": ["B.t3"]})
    with pytest.raises(FeaturesError, match=r"holds no complete features: its writer did not finish \(no complete "
                                            r"mark\)"):
        read_features(out)


def test_a_lock_taken_and_let_go_by_others_again_and_again_is_one_message(tmp_path, monkeypatch):
    monkeypatch.setattr(Lock, "_still_named", lambda self, fd: False)  # each time, another holder let go just then
    with pytest.raises(InUse, match="x is being taken and let go by other writers again and again; try later"):
        Lock(tmp_path / ".x.lock", "x").hold()


def test_a_weight_file_that_cannot_be_looked_at_is_one_line(tmp_path):
    from cortexgraph.interop import WeightMapError, read_state_dict

    with pytest.raises(WeightMapError, match=r"cannot be read: File name too long$"):
        read_state_dict(tmp_path / ("x" * 300 + ".pt"))
