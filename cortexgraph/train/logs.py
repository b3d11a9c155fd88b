"""`--log tensorboard`, `--log wandb` (or both, `tensorboard,wandb`): a run's numbers where the field looks at
them, beside metrics.csv and metrics.json, which stay the record.

Each epoch: the losses and accuracies, the learning rate, the mean gradient norm, the test accuracy at every
readout step, `readout.activity`'s cost and each area's part, and histograms of each area's activity at each
step on a fixed batch of test images. At the end: the accuracy-by-readout-step plot and the rolled drawing of
the network, as images. TensorBoard's event files go to OUT/tensorboard; the W&B run to OUT/wandb, offline
unless WANDB_MODE says otherwise (`wandb sync OUT/wandb/offline-run-*` uploads it later).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

LOGS = ("tensorboard", "wandb")
LOG_FOLDERS = LOGS  # each log's folder in the run folder, by its name


def parse_logs(text: str | None) -> list[str]:
    """`tensorboard`, `wandb` or `tensorboard,wandb` as a list (in that order); ValueError naming the unknown."""
    if not text:
        return []
    words = [w.strip() for w in text.split(",") if w.strip()]
    for word in words:
        if word not in LOGS:
            raise ValueError(f"--log {text}: {word!r} is not a log; give tensorboard, wandb or tensorboard,wandb")
    return [name for name in LOGS if name in words]


def missing_package(kinds: list[str]) -> str | None:
    """Why a log asked for cannot be written here (its package is not installed), or None."""
    import importlib.util

    for kind in kinds:
        if importlib.util.find_spec(kind) is None:
            return f"--log {kind} needs the {kind} package: pip install {kind} (or cortexgraph[logs])"
    return None


class Logs:
    """The logs of one run, written by its main process."""

    def __init__(self, kinds: list[str], out: Path, name: str, settings: dict[str, Any], resumed_after: int):
        self.kinds, self.out = kinds, Path(out)
        self.tensorboard = self.wandb = None
        if "tensorboard" in kinds:
            from torch.utils.tensorboard import SummaryWriter

            # A resumed run writes a new event file beside the old ones: TensorBoard reads them as one run.
            self.tensorboard = SummaryWriter(log_dir=str(self.out / "tensorboard"), purge_step=resumed_after + 1)
            self.tensorboard.add_text("settings", "\n".join(f"    {k}: {v}" for k, v in settings.items()))
        if "wandb" in kinds:
            import wandb

            (self.out / "wandb").mkdir(exist_ok=True)  # (absolute below: W&B's service resolves paths in its folder)
            self.wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "cortexgraph"), name=name,
                                    dir=str(self.out.resolve()), mode=os.environ.get("WANDB_MODE", "offline"),
                                    config=settings, reinit="create_new", settings=wandb.Settings(silent=True))

    def epoch(self, epoch: int, record: dict[str, Any], histograms: dict[tuple[str, int], torch.Tensor]) -> None:
        scalars = {k: record[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "grad_norm",
                                          "activity_cost", "images_per_second") if k in record}
        scalars.update({f"accuracy_at_step/{t}": v for t, v in (record.get("anytime") or {}).items()})
        scalars.update({f"activity/{area}": v for area, v in (record.get("activity") or {}).items()})
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(key, value, epoch)
            for (area, step), values in histograms.items():
                self.tensorboard.add_histogram(f"{area}/t{step}", values, epoch)
            self.tensorboard.flush()
        if self.wandb is not None:
            import wandb

            self.wandb.log({**scalars, **{f"{area}/t{step}": wandb.Histogram(values.numpy())
                                          for (area, step), values in histograms.items()}}, step=epoch)

    def images(self, images: dict[str, bytes], epoch: int) -> None:
        """PNG images (the anytime plot, the drawing), logged at the last epoch."""
        import io

        from PIL import Image

        for name, png in images.items():
            picture = Image.open(io.BytesIO(png)).convert("RGB")
            if self.tensorboard is not None:
                import numpy as np

                self.tensorboard.add_image(name, np.asarray(picture), epoch, dataformats="HWC")
            if self.wandb is not None:
                import wandb

                self.wandb.log({name: wandb.Image(picture)}, step=epoch)

    def where(self) -> list[str]:
        """Where each log went, and how to look at it."""
        lines = []
        if self.tensorboard is not None:
            lines.append(f"logged to {self.out / 'tensorboard'} (tensorboard --logdir {self.out / 'tensorboard'})")
        if self.wandb is not None:
            lines.append(f"logged to {self.wandb.dir.removesuffix('/files')}"
                         + (" (offline: wandb sync uploads it)" if self.wandb.settings.mode == "offline" else ""))
        return lines

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()
