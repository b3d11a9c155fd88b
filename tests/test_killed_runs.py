"""A training run killed at random moments (SIGKILL, mid-checkpoint included) and resumed each time
ends with exactly the weights of a run that was never interrupted, and no checkpoint on disk is ever
truncated or half-written.

Each run is a real `cortexgraph train` process. To make kills land inside checkpoint writes, the
process writes checkpoints slowly (in small chunks, pausing before the final rename): see DRIVER.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from cortexgraph.checkpoint import read_checkpoint

from .test_train import TINY

DRIVER = """
import io, os, sys, time
import torch
import cortexgraph.atomic as atomic

real_save, real_replace = torch.save, os.replace

def slow_save(obj, f, *args, **kwargs):  # a slow disk: the temporary file grows in small pieces
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    with open(f, "wb") as out:
        for i in range(0, len(data), 4096):
            out.write(data[i:i + 4096])
            out.flush()
            time.sleep(0.002)

def slow_replace(src, dst):  # and a pause between the finished temporary file and its rename
    time.sleep(0.05)
    real_replace(src, dst)

torch.save = slow_save
atomic.os = type(os)("os_with_a_slow_rename")
atomic.os.__dict__.update(os.__dict__)
atomic.os.replace = slow_replace

from cortexgraph.cli import main
sys.exit(main(sys.argv[1:]))
"""

EPOCHS = 6


def command(driver, spec, out, resume):
    return [sys.executable, str(driver), "train", str(spec), "--epochs", str(EPOCHS), "--batch-size", "32",
            "--limit-batches", "3", "--optimizer", "adamw", "--lr", "0.003", "--seed", "7", "--out", str(out),
            "--quiet"] + (["--resume"] if resume else [])


def checkpoint_is_whole(out: Path) -> int:
    """The epoch a checkpoint on disk holds (0: none yet); fails if one exists but is not whole."""
    path = out / "checkpoint.pt"
    return read_checkpoint(path)["epoch"] if path.exists() else 0


def test_killed_and_resumed_runs_end_with_the_uninterrupted_weights(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    subprocess.run(command(driver, spec, tmp_path / "whole", False), check=True, env=env, timeout=300)
    whole = read_checkpoint(tmp_path / "whole" / "checkpoint.pt")

    out = tmp_path / "killed"
    rng = random.Random(2026)
    kills, mid_write, epochs_seen = 0, 0, []
    for attempt in range(40):
        before = checkpoint_is_whole(out)
        process = subprocess.Popen(command(driver, spec, out, resume=before > 0), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        if attempt % 2 == 0:  # kill the moment a checkpoint is being written
            while process.poll() is None and time.time() < deadline and not list(out.glob(".checkpoint.pt.*.tmp")):
                time.sleep(0.002)
        else:  # let it get an epoch further, then kill at a random moment of what follows
            while process.poll() is None and time.time() < deadline and checkpoint_is_whole(out) == before:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.6))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            mid_write += bool(list(out.glob(".checkpoint.pt.*.tmp")))
            epochs_seen.append(checkpoint_is_whole(out))
            continue
        assert process.returncode == 0, process.stderr.read().decode()[-2000:]
        break
    else:
        raise AssertionError("the run never finished")
    print(f"{kills} kills ({mid_write} while a checkpoint was being written), checkpoints seen after them: "
          f"{epochs_seen}")
    assert kills >= 4 and mid_write >= 2, (kills, mid_write)
    resumed = read_checkpoint(out / "checkpoint.pt")
    assert resumed["epoch"] == EPOCHS and epochs_seen == sorted(epochs_seen)
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    assert [e["test_loss"] for e in whole["metrics"]] == [e["test_loss"] for e in resumed["metrics"]]
    assert not list(out.glob(".*.tmp"))  # the last run cleaned up what killed ones left
