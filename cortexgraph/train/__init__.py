"""Training: `cortexgraph train SPEC` and `cortexgraph.train.train(TrainConfig(...))`.

The usual recipe (SGD with momentum or AdamW, cosine or step schedule, weight
decay, label smoothing; bf16 autocast and channels-last on GPUs), a progress
bar, per-epoch metrics in CSV and JSON, test accuracy at every readout step,
and a checkpoint after every epoch written atomically with the spec and the
settings inside. Each epoch seeds its own randomness from (seed, epoch), so a
run resumed from a checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from ..model import CortexNet, construct, override
from ..spec import load_spec
from . import distributed as dist
from .data import DataError, make_data
from .report import write_anytime, write_metrics

__all__ = ["DataError", "TrainConfig", "TrainingError", "result_lines", "train"]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, an unwritable output folder): one line says why."""


@dataclass
class TrainConfig:
    spec: str
    data: str = "synthetic"
    data_dir: str = "data"
    out: str | None = None  # default: runs/<spec name>
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adamw
    lr: float | None = None  # default: 0.1 (sgd), 0.001 (adamw)
    momentum: float = 0.9
    weight_decay: float | None = None  # default: 5e-4 (sgd), 0.05 (adamw)
    schedule: str = "cosine"  # cosine | step | constant
    step_size: int = 30
    gamma: float = 0.1
    label_smoothing: float = 0.0
    amp: bool | None = None  # bf16 autocast; default: on for CUDA
    channels_last: bool | None = None  # default: on for CUDA
    device: str = "auto"
    workers: int = 0
    seed: int = 0
    resume: bool = False
    steps: int | None = None  # overrides of the spec, as `build` takes them
    classes: int | None = None
    size: int | None = None
    share: str | None = None
    norm: str | None = None
    activation_checkpointing: bool | None = None  # recompute each step in the backward pass (less memory)
    clip_grad: float | None = None  # clip the gradients' total norm to this
    on_nonfinite: str = "stop"  # stop (say where it first appeared) | skip (the optimizer step)
    anytime: bool = True  # test accuracy at every readout step
    progress: bool = True
    allow_imports: bool = False  # let ops named package.module:op import their module
    limit_batches: int | None = None  # at most this many batches per epoch (quick runs)

    def __post_init__(self) -> None:
        checks = [(self.epochs >= 1, "epochs must be at least 1"),
                  (self.batch_size >= 1, "batch size must be at least 1"),
                  (self.optimizer in ("sgd", "adamw"), "optimizer is sgd or adamw"),
                  (self.schedule in ("cosine", "step", "constant"), "schedule is cosine, step or constant"),
                  (self.lr is None or self.lr > 0, "learning rate must be positive"),
                  (0 <= self.label_smoothing < 1, "label smoothing is in [0, 1)"),
                  (self.clip_grad is None or self.clip_grad > 0, "gradient clipping needs a positive norm"),
                  (self.on_nonfinite in ("stop", "skip"), "on_nonfinite is stop or skip"),
                  (self.workers >= 0, "workers must be >= 0")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.lr is None:
            self.lr = 0.1 if self.optimizer == "sgd" else 1e-3
        if self.weight_decay is None:
            self.weight_decay = 5e-4 if self.optimizer == "sgd" else 0.05


def train(config: TrainConfig) -> dict[str, Any]:
    """Run training; returns the final metrics and where everything was written."""
    world = dist.world_from_env()
    device = dist.device_for(config.device, world)  # before the process group: NCCL needs the GPU set
    dist.start(world, device)
    try:
        return _Run(config, world, device).run()
    finally:
        dist.stop(world)


def _loss(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e4 else f"{value:.3g}"


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


class _Run:
    def __init__(self, config: TrainConfig, world: dist.World, device: torch.device):
        self.config, self.world, self.device = config, world, device
        cuda = self.device.type == "cuda"
        self.amp = cuda if config.amp is None else config.amp
        self.channels_last = cuda if config.channels_last is None else config.channels_last
        self.say = print if (world.main and config.progress) else (lambda *a, **k: None)

    # --- set-up: everything that can fail does so before the first step -----------------------

    def prepare(self) -> None:
        config = self.config
        spec = override(load_spec(config.spec), steps=config.steps, classes=config.classes, size=config.size,
                        share=config.share, norm=config.norm, checkpoint=config.activation_checkpointing)
        self.out = Path(config.out or Path("runs") / spec.name)
        self.checkpoint_path = self.out / "checkpoint.pt"
        self.payload = self._resume_payload(spec) if config.resume else None
        torch.manual_seed(config.seed)
        self.model: CortexNet = (load_model(self.checkpoint_path, self.payload, config.allow_imports) if self.payload
                                 else construct(_plan(spec, config.allow_imports)))
        self.spec = self.model.spec
        self.data = make_data(config.data, self.spec, config.data_dir, config.seed)
        classes = self.spec.readout.head.classes
        if self.data.classes != classes:
            raise DataError(f"{self.spec.name} reads out {classes} classes but {self.data.name} has "
                            f"{self.data.classes}; pass --classes {self.data.classes}")
        if self.world.main:
            self._check_output()
        self.model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.optimizer = self._optimizer()
        self.epochs: list[dict[str, Any]] = []
        self.start_epoch = 0
        if self.payload:
            self.optimizer.load_state_dict(self.payload["optimizer"])
            self.start_epoch = int(self.payload["epoch"])
            self.epochs = list(self.payload.get("metrics", []))
        self.net = self.model
        if self.world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # The Plan runs the same calls every iteration (a static graph); some parameters, such
            # as the norms of steps the readout never needs, get no gradient, which DDP allows then.
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, static_graph=True)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def _resume_payload(self, spec) -> dict[str, Any]:
        if not self.checkpoint_path.is_file():
            raise CheckpointError(f"nothing to resume: {self.checkpoint_path} does not exist")
        payload = read_checkpoint(self.checkpoint_path)
        if payload["spec"] != spec.to_dict():
            raise CheckpointError(f"{self.checkpoint_path} was trained from another spec than "
                                  f"{self.config.spec!r} (with these overrides); resume with the same spec")
        return payload

    def _check_output(self) -> None:
        """Fail now, not after an epoch, if checkpoints cannot be written here."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            for stale in self.out.glob(".*.tmp"):  # left by a run killed while writing (see atomic.py)
                if stale.name.split(".")[1] in ("checkpoint", "metrics", "anytime"):
                    stale.unlink()
            probe = self.out / ".cortexgraph-write-test"
            probe.write_bytes(b"x")
            probe.unlink()
        except OSError as exc:
            raise TrainingError(f"cannot write to {self.out}: {exc.strerror or exc}") from None
        need = 3 * sum(t.numel() * t.element_size() for t in self.model.state_dict().values()) + (1 << 20)
        free = shutil.disk_usage(self.out).free
        if free < need:
            raise TrainingError(f"{self.out} has {free / 1e6:.1f} MB free; a checkpoint of this model needs "
                                f"about {need / 1e6:.1f} MB")

    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        return torch.optim.AdamW(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def _set_lr(self, epoch: int) -> None:
        """The learning rate of an epoch, in closed form (what CosineAnnealingLR and StepLR compute).

        Set from the epoch number rather than kept in a stateful scheduler, so a
        resumed run (or one resumed with more epochs) has exactly the rates it
        would have had without stopping."""
        c = self.config
        if c.schedule == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * epoch / c.epochs))
        elif c.schedule == "step":
            factor = c.gamma ** (epoch // c.step_size)
        else:
            factor = 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = c.lr * factor

    def _loader(self, dataset, train: bool, epoch: int) -> DataLoader:
        sampler = None
        if self.world.distributed:
            sampler = DistributedSampler(dataset, num_replicas=self.world.size, rank=self.world.rank,
                                         shuffle=train, seed=self.config.seed)
            sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(_epoch_seed(self.config.seed, epoch))
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=train and sampler is None,
                          sampler=sampler, generator=generator, num_workers=self.config.workers,
                          pin_memory=self.device.type == "cuda")

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.prepare()
        config = self.config
        if self.start_epoch >= config.epochs:
            self.say(f"{self.checkpoint_path} has finished all {config.epochs} epochs; nothing to do")
        for epoch in range(self.start_epoch, config.epochs):
            torch.manual_seed(_epoch_seed(config.seed, epoch))
            random.seed(_epoch_seed(config.seed, epoch))
            self._set_lr(epoch)
            train = self._train_epoch(epoch)
            dist.share_buffers(self.model, self.world)
            test = self._evaluate(epoch)
            in_sync, checksum = dist.checksums_agree(self.model, self.world, self.device)
            if not in_sync:
                raise TrainingError(f"processes disagree on the weights after epoch {epoch + 1}")
            warnings = self._warnings(train, test)
            record = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], **train, **test,
                      "warnings": warnings}
            if self.world.distributed:
                record["processes"] = self.world.size
                record["checksum"] = checksum
            self.epochs.append(record)
            self.say(f"epoch {epoch + 1}/{config.epochs}: train loss {_loss(train['train_loss'])} "
                     f"acc {100 * train['train_acc']:.1f}% | test loss {_loss(test['test_loss'])} "
                     f"acc {100 * test['test_acc']:.1f}% | {train['images_per_second']:.0f} img/s"
                     + "".join(f" | warning: {w}" for w in warnings))
            if warnings and self.world.main and not config.progress:
                for warning in warnings:
                    print(f"cortexgraph: warning: epoch {epoch + 1}: {warning}", file=sys.stderr)
            if self.world.main:
                self._save(epoch + 1)
            dist.barrier(self.world)
        return self._finish()

    def _warnings(self, train: dict[str, Any], test: dict[str, Any]) -> list[str]:
        """What makes an epoch's numbers untrustworthy: losses not finite, or orders of magnitude above the
        loss of a uniform guess (log of the classes), where a run starts; skipped optimizer steps."""
        chance = math.log(self.spec.readout.head.classes)
        warnings = []
        for part, loss in (("train", train["train_loss"]), ("test", test["test_loss"])):
            if not math.isfinite(loss):
                warnings.append(f"the {part} loss is {loss}: the model's outputs are not finite")
            elif loss > 100 * chance:
                warnings.append(f"the {part} loss is {loss:.3g}, {loss / chance:.0e} times a uniform guess's "
                                f"({chance:.2f}): training diverges; lower the learning rate or clip the "
                                "gradients (--clip-grad)")
        if train["skipped_steps"]:
            warnings.append(f"{train['skipped_steps']} optimizer steps skipped (non-finite gradients)")
        return warnings

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm import tqdm

        config = self.config
        self.net.train()
        loader = self._loader(self.data.train, True, epoch)
        total = len(loader) if config.limit_batches is None else min(len(loader), config.limit_batches)
        bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=not (self.world.main and config.progress), dynamic_ncols=True)
        try:  # the bar's line is cleared before any message, which then starts a line of its own
            return self._train_batches(loader, total, bar, epoch)
        finally:
            bar.close()

    def _train_batches(self, loader: DataLoader, total: int, bar, epoch: int) -> dict[str, float]:
        config = self.config
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen, skipped, start = 0, 0, time.perf_counter()
        for i, (x, y) in enumerate(loader):
            if i >= total:
                break
            x, y = self._inputs(x), y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = self.net(x)
                loss = self.criterion(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Decided on the gradients, which DDP has made equal everywhere, so that every process
            # skips or stops together; a non-finite loss gives non-finite gradients too.
            if not torch.isfinite(self._gradient_norm()):
                message = self._nonfinite(loss, x, y, epoch, i)
                if config.on_nonfinite == "stop":
                    raise TrainingError(message)
                skipped += 1
                if self.world.main and config.progress:
                    bar.write(f"skipped an optimizer step: {message}")
                self.optimizer.zero_grad(set_to_none=True)
                bar.update()
                continue
            self.optimizer.step()
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            bar.update()
            if i % 5 == 0 or i + 1 == total:
                elapsed = time.perf_counter() - start
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{100 * correct.item() / seen:.1f}%",
                                img_s=f"{seen * self.world.size / elapsed:.0f}")
        elapsed = time.perf_counter() - start
        loss_total, correct_total, seen_total = dist.all_sum([loss_sum.item(), float(correct.item()), float(seen)],
                                                             self.world, self.device)
        seen_total = max(seen_total, 1.0)
        return {"train_loss": loss_total / seen_total, "train_acc": correct_total / seen_total,
                "seconds": round(elapsed, 3), "images_per_second": seen_total / elapsed, "skipped_steps": skipped}

    def _gradient_norm(self) -> torch.Tensor:
        """The gradients' total norm, after clipping it if asked (inf or nan if any is not finite)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.config.clip_grad:
            return nn.utils.clip_grad_norm_(params, self.config.clip_grad)
        return nn.utils.get_total_norm([p.grad for p in params])

    def _nonfinite(self, loss: torch.Tensor, x: torch.Tensor, y: torch.Tensor, epoch: int, batch: int) -> str:
        """Where the trouble first appeared, in one line."""
        from ..diagnose import first_nonfinite_gradient, first_nonfinite_value

        with self._autocast():
            if not torch.isfinite(loss):
                place = first_nonfinite_value(self.model, x)
                what = f"the loss is {loss.item()}; " + (f"it first appears at {place}" if place else
                                                        "cannot say where: a re-run of this batch was finite")
            else:
                place = first_nonfinite_gradient(self.model, x, lambda logits: self.criterion(logits.float(), y))
                what = "gradients are not finite; " + (f"they start at {place}" if place else
                                                       "cannot say where: a re-run of this batch was finite")
        return (f"{what} (epoch {epoch + 1}, batch {batch + 1}); lower the learning rate, clip the gradients "
                "(--clip-grad), or skip such steps (--on-nonfinite skip)")

    @torch.no_grad()
    def _evaluate(self, epoch: int) -> dict[str, Any]:
        model = self.model.eval()
        single = len(self.spec.readout_steps) == 1
        loss_sum = correct = seen = 0.0
        by_step: dict[int, float] = {}
        for x, y in self._loader(self.data.test, False, epoch):
            x, y = self._inputs(x), y.to(self.device)
            with self._autocast():
                anytime = model(x, readout="all") if self.config.anytime else {}
                final = anytime[self.spec.readout_steps[0]] if single and anytime else model(x)
            loss_sum += float(self.criterion(final.float(), y)) * len(y)
            correct += float((final.argmax(1) == y).sum())
            seen += len(y)
            for step, logits in anytime.items():
                by_step[step] = by_step.get(step, 0.0) + float((logits.argmax(1) == y).sum())
        steps = sorted(by_step)
        totals = dist.all_sum([loss_sum, correct, seen] + [by_step[t] for t in steps], self.world, self.device)
        loss_sum, correct, seen = totals[:3]
        return {"test_loss": loss_sum / seen, "test_acc": correct / seen,
                "anytime": {t: c / seen for t, c in zip(steps, totals[3:])}}

    # --- outputs -------------------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.config), "device": str(self.device), "amp": self.amp,
                "channels_last": self.channels_last, "processes": self.world.size}

    def _save(self, epochs_done: int) -> None:
        model_state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        try:
            save_checkpoint(self.checkpoint_path, spec=self.spec.to_dict(), settings=self._settings(),
                            model=model_state, optimizer=self.optimizer.state_dict(), epoch=epochs_done,
                            metrics=self.epochs)
        except OSError as exc:
            kept = (f"{self.checkpoint_path} still holds epoch {epochs_done - 1}" if epochs_done > 1
                    else "no checkpoint was written")
            raise TrainingError(f"cannot write the checkpoint of epoch {epochs_done} in {self.out}: "
                                f"{exc.strerror or exc}; {kept}") from None
        try:
            write_metrics(self.out, {"spec": self.spec.name, "settings": self._settings()}, self.epochs)
        except OSError as exc:
            raise TrainingError(f"cannot write the metrics in {self.out}: {exc.strerror or exc}; "
                                f"{self.checkpoint_path} holds epoch {epochs_done} and its metrics") from None

    def _finish(self) -> dict[str, Any]:
        last = self.epochs[-1] if self.epochs else {}
        result = {"out": str(self.out), "checkpoint": str(self.checkpoint_path), "epochs": self.epochs,
                  "test_acc": last.get("test_acc", math.nan), "anytime": last.get("anytime", {})}
        if self.world.main and last.get("anytime"):
            anytime = {int(t): v for t, v in last["anytime"].items()}
            plot = write_anytime(self.out, self.spec.name, anytime, self.spec.readout_steps,
                                 self.spec.readout.head.classes)
            result["plot"] = str(plot)
        for line in result_lines(result):
            self.say(line)
        return result


def result_lines(result: dict[str, Any]) -> list[str]:
    """What a finished run says: its test accuracy (at every readout step) and where it wrote everything."""
    if not result["epochs"]:
        return []
    out = result["out"]
    if result.get("plot"):
        steps = ", ".join(f"t={t} {100 * a:.1f}%" for t, a in sorted(result["anytime"].items()))
        return [f"test accuracy by readout step: {steps}",
                f"wrote {out}/metrics.csv, metrics.json, checkpoint.pt and the plot {result['plot']}"]
    return [f"test accuracy {100 * result['test_acc']:.1f}%; wrote {out}/metrics.csv, metrics.json and checkpoint.pt"]


def _plan(spec, allow_imports: bool = False):
    from ..analysis import analyze
    from ..plan import make_plan

    return make_plan(analyze(spec, allow_imports=allow_imports))
