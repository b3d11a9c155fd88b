"""The training loop: `train(TrainConfig(...))`, as `cortexgraph train SPEC` runs it.

Everything that can fail does so before the first step (`_Run.prepare`); each
epoch seeds its own randomness from (seed, epoch), so a run resumed from its
checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..checkpoint import CheckpointError, load_weights, read_checkpoint, resume_problem, save_checkpoint
from ..compiler import compile
from ..construct import construct
from ..model import CortexNet
from . import distributed as dist
from .config import TrainConfig
from .data import DataError, Unreadable, check_batch, collate, make_data
from .logs import Logs, missing_package, parse_logs
from .optim import load_optimizer_state, make_optimizer, set_lr
from .report import epoch_warnings, result_lines, write_anytime, write_metrics
from .resume import changed_settings, inherit, inherited_words, per_epoch, saved_settings
from .run_folder import FolderError, RunFolder


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, an unwritable output folder): one line says why."""


class RefusedRun(TrainingError):
    """A run refused before it trains (its folder is held or holds a run, a resume with other settings,
    an output that cannot be written): nothing was written, exit status 2 as for any refused input."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; says what was kept and how to go on."""


# Called with each epoch's record once its checkpoint is saved (on the main process): a reason to stop the run
# there, or None to go on. A sweep's pruner is one.
EpochHook = Callable[[dict[str, Any]], "str | None"]


def train(config: TrainConfig, on_epoch: EpochHook | None = None) -> dict[str, Any]:
    """Run training; returns the final metrics and where everything was written (and, where `on_epoch`
    stopped it early, `stopped`: why)."""
    world = dist.world_from_env()
    device = dist.device_for(config.device, world)  # before the process group: NCCL needs the GPU set
    joined = dist.start(world, device)
    run = _Run(config, world, device, on_epoch)
    try:
        return run.run()
    finally:
        if run.folder is not None:
            run.folder.release()
        if joined:
            dist.stop(world)


def _loss(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e4 else f"{value:.3g}"


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


class _Run:
    def __init__(self, config: TrainConfig, world: dist.World, device: torch.device,
                 on_epoch: EpochHook | None = None):
        self.config, self.world, self.device = config, world, device
        self.on_epoch, self.stopped = on_epoch, None
        cuda = self.device.type == "cuda"
        self.amp = cuda if config.amp is None else config.amp
        self.channels_last = cuda if config.channels_last is None else config.channels_last
        self.say = print if (world.main and config.progress) else (lambda *a, **k: None)
        self.folder: RunFolder | None = None  # held by the main process, from prepare() on
        self.saved_epochs = 0
        self.replacing = False  # --overwrite found a run: its files go when this run's first epoch is saved

    # --- set-up: everything that can fail does so before the first step -----------------------

    def prepare(self) -> None:
        config = self.config
        missing = missing_package(parse_logs(config.log))
        if missing:  # before anything is written
            raise RefusedRun(missing)
        plan = compile(config.spec, allow_imports=config.allow_imports, **config.overrides().model_dump())
        spec = plan.spec
        self.out = Path(config.out) if config.out is not None else Path("runs") / spec.name
        self.checkpoint_path = self.out / "checkpoint.pt"
        if self.world.main:
            self.folder = RunFolder(self.out)
            self._take_folder()
        self.payload, self.inherited = None, set()  # (the settings a resumed run took from its checkpoint)
        if config.resume:  # the run's settings, with those given on top: a config of their own
            self.payload, plan = self._resume_payload(plan)
            config = self.config
        torch.manual_seed(config.seed)
        self.model: CortexNet = construct(plan)
        if self.payload:
            load_weights(self.model, self.payload, self.checkpoint_path,  # (training never saves such a model)
                         hint="a run does not go on from it: start it again, or from another checkpoint")
            self.saved_epochs = self.payload["epoch"]
        self.spec = self.model.spec
        check_batch(self.spec, config.batch_size)
        self.data = make_data(config.data, self.spec, config.data_dir, config.seed, config.download, config.augment,
                              config.normalize, config.data_keys, config.test_split,
                              root_is_theirs="data_dir" in self.inherited)
        # The run's checkpoints keep what its data set chose, so a resumed run prepares its images alike.
        config.augment, config.normalize = self.data.augment, self.data.setting
        classes = self.spec.readout.head.classes
        if self.data.classes != classes:
            raise DataError(f"{self.spec.name} reads out {classes} classes but {self.data.name} has "
                            f"{self.data.classes}; pass --classes {self.data.classes}")
        if self.world.main:
            self._check_output()
        self.model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.optimizer = make_optimizer(self.config, self.model.parameters(), self.device)
        self.epochs: list[dict[str, Any]] = []
        self.start_epoch = 0
        if self.payload:
            load_optimizer_state(self.optimizer, self.payload["optimizer"], self.device, self.checkpoint_path)
            self.start_epoch = int(self.payload["epoch"])
            self.epochs = list(self.payload.get("metrics", []))
            self.payload = None
        self.net = self.model
        if self.world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # The Plan runs the same calls every iteration (a static graph); some parameters, such
            # as the norms of steps the readout never needs, get no gradient, which DDP allows then.
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, static_graph=True)
        self.eager_net = self.net
        if config.compile:
            # One call form and, for full batches, one shape: one graph (a smaller last batch runs eagerly
            # rather than compile a second). DDP splits the graph at its gradient buckets.
            self.net = torch.compile(self.net, mode=config.compile, fullgraph=not self.world.distributed)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def _take_folder(self) -> None:
        """Hold the run folder for this run: never a folder another run holds, never a finished or
        stopped run's files unless the user said --resume or --overwrite."""
        try:
            replaced = self.folder.take(self.config.resume, self.config.overwrite)
        except FolderError as exc:
            raise RefusedRun(str(exc)) from None
        if replaced:  # kept until this run saves its first epoch
            self.say(f"replacing the run in {self.out} ({replaced}) once this run's first epoch is saved: "
                     "--overwrite")
            self.replacing = True

    def _resume_payload(self, plan) -> tuple[dict[str, Any], Any]:
        """The checkpoint to resume from and the plan of its spec; `self.config` becomes the run's settings,
        with those given on top (`resume.inherit`), once they are found to continue the run."""
        if not self.checkpoint_path.is_file():
            raise CheckpointError(f"nothing to resume: {self.checkpoint_path} does not exist")
        payload = read_checkpoint(self.checkpoint_path)
        problem = resume_problem(payload)
        if problem:
            raise CheckpointError(f"cannot resume from {self.checkpoint_path}: {problem}")
        given, saved = self.config, saved_settings(payload["settings"])
        settings, taken = inherit(given, saved)
        try:  # the checkpoint's settings are data, validated as flags are
            self.config = TrainConfig(**settings)
        except ValueError as exc:
            raise CheckpointError(f"cannot resume from {self.checkpoint_path}: its settings cannot be used "
                                  f"({exc})") from None
        self.inherited = set(taken)
        # Its data_dir is read, never written to: --download downloads only where --data-dir is given.
        if self.config.download and "data_dir" in taken and self.config.data_dir != given.data_dir:
            raise RefusedRun(f"--download writes only where --data-dir names (the run's data_dir, "
                             f"{self.config.data_dir}, is read, never written to); pass --data-dir "
                             f"{self.config.data_dir} to download there")
        changes = changed_settings(self._settings(), saved, payload["epoch"])
        if changes:
            raise RefusedRun(f"cannot resume {self.out} with other settings than its run's: {'; '.join(changes)}; "
                                "give the run's values, or start a new run (--overwrite, or another --out)")
        if self.config.overrides() != given.overrides():  # the run's overrides make the run's spec
            plan = compile(self.config.spec, allow_imports=self.config.allow_imports,
                           **self.config.overrides().model_dump())
        # Activation checkpointing is how the run is carried out (memory for time), not what it trains.
        theirs = {k: v for k, v in payload["spec"].items() if k != "checkpoint"}
        if theirs != {k: v for k, v in plan.spec.to_dict().items() if k != "checkpoint"}:
            raise CheckpointError(f"{self.checkpoint_path} was trained from another spec than "
                                  f"{self.config.spec!r} (with these overrides); resume with the same spec")
        words = inherited_words(given, settings, taken)
        self.say(f"resuming {self.out} after epoch {payload['epoch']}" + (f" (its settings: {words})" if words else ""))
        return payload, plan

    def _check_output(self) -> None:
        """Fail now, not after an epoch, if checkpoints cannot be written here."""
        need = 3 * sum(t.numel() * t.element_size() for t in self.model.state_dict().values()) + (1 << 20)
        try:
            self.folder.check_writable(need, "a checkpoint of this model")
        except FolderError as exc:
            raise RefusedRun(str(exc)) from None

    def _loader(self, dataset, train: bool, epoch: int) -> DataLoader:
        sampler = None
        if self.world.distributed:
            sampler = DistributedSampler(dataset, num_replicas=self.world.size, rank=self.world.rank,
                                         shuffle=train, seed=self.config.seed)
            sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(_epoch_seed(self.config.seed, epoch))
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=train and sampler is None,
                          sampler=sampler, generator=generator, num_workers=self.config.workers,
                          pin_memory=self.device.type == "cuda", collate_fn=collate)

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.prepare()
        self.logs = self._open_logs()
        try:
            self._epochs()
            return self._finish()
        except KeyboardInterrupt:
            raise Interrupted(self._interrupted()) from None
        finally:
            if self.logs is not None:
                self.logs.close()

    def _open_logs(self) -> Logs | None:
        """--log's writers (the main process's), and the test images whose activity they show each epoch."""
        kinds = parse_logs(self.config.log)
        if not kinds or not self.world.main:
            return None
        from .data import Strict, stacked

        test = Strict(self.data.test)
        self.log_images = stacked(torch.utils.data.Subset(test, range(min(64, len(test)))))[0]
        return Logs(kinds, self.out, self.spec.name, per_epoch(self._settings()), self.start_epoch)

    def _activity_histograms(self) -> dict[tuple[str, int], torch.Tensor]:
        """Each area's values at each step on the logged test images (evaluation mode), for the logs."""
        self.model.eval()
        with torch.no_grad(), self._autocast():
            _, states = self.model(self._inputs(self.log_images), return_states=True)
        return {key: value.detach().float().flatten().cpu() for key, value in states.items()}

    def _interrupted(self) -> str:
        if not self.world.main:
            return "interrupted"
        if self.saved_epochs:
            how = "--resume in place of --overwrite" if self.config.overwrite else "--resume"
            return (f"interrupted; {self.checkpoint_path} holds epoch {self.saved_epochs} of {self.config.epochs}: "
                    f"continue with the same command and {how}")
        if self.replacing:
            return f"interrupted before the first epoch was saved; {self.out} still holds the run it held"
        return "interrupted before the first epoch was saved; nothing was written"

    def _epochs(self) -> None:
        config = self.config
        if self.start_epoch >= config.epochs:
            self.say(f"{self.checkpoint_path} has finished all {config.epochs} epochs; nothing to do")
        else:
            self.say(f"data {self.data.describe()}")
        for epoch in range(self.start_epoch, config.epochs):
            torch.manual_seed(_epoch_seed(config.seed, epoch))
            random.seed(_epoch_seed(config.seed, epoch))
            set_lr(self.optimizer, config, epoch)
            train = self._train_epoch(epoch)
            dist.share_buffers(self.model, self.world)
            test = self._evaluate(epoch)
            self._check_finite(epoch + 1)  # on every process (the same weights), before comparing them
            in_sync, checksum = dist.checksums_agree(self.model, self.world, self.device)
            if not in_sync:
                raise TrainingError(f"processes disagree on the weights after epoch {epoch + 1}")
            warnings = epoch_warnings(train, test, self.spec.readout.head.classes)
            record = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], **train, **test,
                      "warnings": warnings, "settings": per_epoch(self._settings())}
            if self.world.distributed:
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
                if self.logs is not None:
                    self.logs.epoch(epoch + 1, record, self._activity_histograms())
            dist.barrier(self.world)
            if self.on_epoch is not None:
                # Decided once, on the main process, and told to the others, so that all stop together.
                reason = dist.from_main(self.on_epoch(record) if self.world.main else None, self.world)
                if reason and epoch + 1 < config.epochs:  # (after the last epoch there is nothing to stop)
                    self.stopped = reason
                    self.say(f"stopped after epoch {epoch + 1} of {config.epochs}: {self.stopped}")
                    break

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

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

    def _train_batches(self, loader: DataLoader, total: int, bar, epoch: int) -> dict[str, Any]:
        config = self.config
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen, skipped, start = 0, 0, time.perf_counter()
        unreadable: list[Unreadable] = []
        norm_sum, stepped = torch.zeros((), dtype=torch.float64, device=self.device), 0  # gradient norms, steps
        cost_sum = torch.zeros((), dtype=torch.float64, device=self.device)  # readout.activity's cost, and
        activity: dict[str, torch.Tensor] = {}  # each area's activity (its norm), summed over the images
        # A skipped step leaves no trace: the norms' running statistics it updated are put back.
        buffers = [b for b in self.model.buffers() if b.is_floating_point() or b.dtype == torch.int64]
        # (None where there is nothing to keep: torch's list copies refuse empty lists, and a model without
        # norm statistics, such as a gated ConvRNN, has none.)
        backup = [torch.empty_like(b) for b in buffers] if config.on_nonfinite == "skip" and buffers else None
        for i, (x, y, bad) in enumerate(loader):
            if i >= total:
                break
            unreadable += bad
            if x is None:
                if self.world.distributed:  # the other processes are waiting in this step's all-reduce
                    raise TrainingError(f"batch {i + 1} of epoch {epoch + 1} holds only unreadable files "
                                        f"({bad[0].path}: {bad[0].reason}, ...); remove them from the data")
                bar.update()
                continue
            x, y = self._inputs(x), y.to(self.device, non_blocking=True)
            if backup is not None:
                torch._foreach_copy_(backup, buffers)
            net = self.net if len(y) == config.batch_size else self.eager_net
            if net is not self.eager_net:  # compiled: under reduce-overhead, the last iteration's outputs are done
                torch.compiler.cudagraph_mark_step_begin()
            with self._autocast():
                if self.model.costs_activity:  # readout.activity: a cost on every area's states too
                    output, states = net(x, readout=self.model.loss_readout, return_states=True)
                    cost, by_area = self.model.activity(states)
                else:
                    output = net(x, readout=self.model.loss_readout)  # per step where the loss weighs steps
                loss = self.model.loss(output, y, self.criterion)
                if self.model.costs_activity:
                    loss = loss + cost
                logits = self.model.prediction(output)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Decided on the gradients, which DDP has made equal everywhere, so that every process
            # skips or stops together; a non-finite loss gives non-finite gradients too.
            norm = self._gradient_norm()
            if not torch.isfinite(norm):
                message = self._nonfinite(loss, x, y, epoch, i)
                if config.on_nonfinite == "stop":
                    raise TrainingError(message)
                if backup is not None:  # after the diagnosis, which ran the batch again
                    torch._foreach_copy_(buffers, backup)
                skipped += 1
                if self.world.main and config.progress:
                    bar.write(f"skipped an optimizer step: {message}")
                self.optimizer.zero_grad(set_to_none=True)
                bar.update()
                continue
            self.optimizer.step()
            norm_sum += norm.detach().double()
            stepped += 1
            if self.model.costs_activity:
                cost_sum += cost.detach().double() * len(y)
                for area, value in by_area.items():
                    activity[area] = activity.get(area, 0.0) + value.double() * len(y)
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            bar.update()
            if i % 5 == 0 or i + 1 == total:
                elapsed = time.perf_counter() - start
                bar.set_postfix(loss=f"{loss_sum.item() / max(seen, 1):.3f}",
                                acc=f"{100 * correct.item() / max(seen, 1):.1f}%",
                                img_s=f"{seen * self.world.size / elapsed:.0f}")
        elapsed = time.perf_counter() - start
        loss_total, correct_total, seen_total = dist.all_sum([loss_sum.item(), float(correct.item()), float(seen)],
                                                             self.world, self.device)
        if not seen_total and not skipped:
            raise TrainingError(f"epoch {epoch + 1} trained on no images"
                                + (f": all {len(unreadable)} files were unreadable ({unreadable[0].path}: "
                                   f"{unreadable[0].reason}, ...)" if unreadable else ""))
        mean = (lambda total: total / seen_total) if seen_total else (lambda total: math.nan)  # all skipped
        record = {"train_loss": mean(loss_total), "train_acc": mean(correct_total),
                  "seconds": round(elapsed, 3), "images_per_second": seen_total / elapsed, "skipped_steps": skipped,
                  "grad_norm": norm_sum.item() / stepped if stepped else math.nan,  # (DDP made them equal everywhere)
                  "unreadable": _unreadable_record(dist.gather_lists(unreadable, self.world))}
        if self.model.costs_activity:  # (the train loss includes the cost; how much of it, and each area's part)
            areas = list(activity)
            totals = dist.all_sum([cost_sum.item(), *(float(activity[a]) for a in areas)], self.world, self.device)
            record["activity_cost"] = mean(totals[0])
            record["activity"] = {area: mean(total) for area, total in zip(areas, totals[1:])}
        return record

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
        unreadable: list[Unreadable] = []
        for x, y, bad in self._loader(self.data.test, False, epoch):
            unreadable += bad
            if x is None:
                continue
            x, y = self._inputs(x), y.to(self.device)
            with self._autocast():
                anytime = model(x, readout="all") if self.config.anytime else {}
                if single and anytime:  # the one readout step's logits, as the loss takes them
                    final = anytime[self.spec.readout_steps[0]]
                    output = {self.spec.readout_steps[0]: final} if model.loss_readout else final
                else:
                    output = model(x, readout=model.loss_readout)
                    final = model.prediction(output)
            loss_sum += float(model.loss(output, y, self.criterion)) * len(y)
            correct += float((final.argmax(1) == y).sum())
            seen += len(y)
            for step, logits in anytime.items():
                by_step[step] = by_step.get(step, 0.0) + float((logits.argmax(1) == y).sum())
        steps = sorted(by_step)
        totals = dist.all_sum([loss_sum, correct, seen] + [by_step[t] for t in steps], self.world, self.device)
        loss_sum, correct, seen = totals[:3]
        if not seen:
            raise TrainingError(f"the test split has no readable images ({len(unreadable)} unreadable)")
        return {"test_loss": loss_sum / seen, "test_acc": correct / seen,
                "anytime": {t: c / seen for t, c in zip(steps, totals[3:])},
                "test_unreadable": _unreadable_record(dist.gather_lists(unreadable, self.world))}

    # --- outputs -------------------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        return {**self.config.settings(), "device": str(self.device), "amp": self.amp,
                "channels_last": self.channels_last, "processes": self.world.size}

    def _kept(self) -> str:
        return (f"{self.checkpoint_path} still holds epoch {self.saved_epochs}" if self.saved_epochs
                else f"{self.out} still holds the run it held" if self.replacing else "no checkpoint was written")

    def _check_finite(self, epochs_done: int) -> None:
        """Weights or running statistics that are not finite: a model that only outputs NaN is never saved."""
        state = self.model.state_dict()
        broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if broken:
            raise TrainingError(f"after epoch {epochs_done}, {len(broken)} of the model's tensors are not finite "
                                f"(such as {broken[0]}); it was not saved, and {self._kept()}")

    def _save(self, epochs_done: int) -> None:
        model_state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        try:
            save_checkpoint(self.checkpoint_path, spec=self.spec.to_dict(), settings=self._settings(),
                            model=model_state, optimizer=self.optimizer.state_dict(), epoch=epochs_done,
                            metrics=self.epochs)
        except OSError as exc:
            raise TrainingError(f"cannot write the checkpoint of epoch {epochs_done} in {self.out}: "
                                f"{exc.strerror or exc}; {self._kept()}") from None
        self.saved_epochs = epochs_done
        if self.replacing:  # the old run's checkpoint is replaced; its other files go
            self.folder.clear_run(keep=("checkpoint.pt",))
            self.replacing = False
        try:
            write_metrics(self.out, {"spec": self.spec.name, "settings": self._settings()}, self.epochs)
        except OSError as exc:
            raise TrainingError(f"cannot write the metrics in {self.out}: {exc.strerror or exc}; "
                                f"{self.checkpoint_path} holds epoch {epochs_done} and its metrics") from None

    def _finish(self) -> dict[str, Any]:
        last = self.epochs[-1] if self.epochs else {}
        result = {"out": str(self.out), "checkpoint": str(self.checkpoint_path), "epochs": self.epochs,
                  "test_acc": last.get("test_acc", math.nan), "anytime": last.get("anytime", {}),
                  "stopped": self.stopped}
        if self.world.main and last.get("anytime"):
            anytime = {int(t): v for t, v in last["anytime"].items()}
            plot = write_anytime(self.out, self.spec.name, anytime, self.spec.readout_steps,
                                 self.spec.readout.head.classes)
            result["plot"] = str(plot)
        if self.logs is not None and self.epochs:
            self.logs.images(self._log_pictures(result), len(self.epochs))
        for line in result_lines(result) + (self.logs.where() if self.logs is not None else []):
            self.say(line)
        return result

    def _log_pictures(self, result: dict[str, Any]) -> dict[str, bytes]:
        """PNGs of the anytime plot and of the rolled drawing, where Graphviz can make it."""
        pictures = {"accuracy_by_readout_step": Path(result["plot"]).read_bytes()} if result.get("plot") else {}
        from ..drawing import DrawError, draw, rendered

        try:
            pictures["network"] = rendered(draw(self.model.plan, view="rolled"), "png")
        except (DrawError, ValueError) as exc:  # no `dot` here, or too big: the logs go without the picture
            print(f"cortexgraph: warning: the logs have no drawing of the network: {exc}", file=sys.stderr)
        return pictures


def _unreadable_record(items: list[Unreadable], named: int = 20) -> dict[str, Any]:
    """How many files could not be read, and the first few of them with the reason."""
    return {"count": len(items), "files": [f"{u.path}: {u.reason}" for u in items[:named]]}
