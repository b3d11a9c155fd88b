"""The in-silico paradigms `cortexgraph probe` runs: what the network sees at each step, per condition.

An experiment varies one thing (how long the image is shown, the gap between two showings, its contrast,
noise, occlusion, or when a mask follows it) over levels; at each level it turns a batch of images
(batch, C, H, W) into the frames shown at each step (batch, steps, C, H, W), `steps` being the run's
(steps 0 to the spec's `steps`, so one more than it). Everything is in the
network's normalised input, where 0 is the grey a blank shows (`input.stimulus`'s `blank: 0.0`).

A lab adds its own as ops are added:

```python
from cortexgraph import register_experiment

@register_experiment("flicker", levels=[1, 2, 3], parameter="period (steps)")
def flicker(images, steps, level, context):
    on = torch.arange(steps) % (2 * level) < level                  # shown for `level` steps, then blank
    return context.sequence(images, on)
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class Context:
    """What an experiment may use beyond the images: the blank's value, a mask per image (for `mask`),
    and a generator seeded per batch (noise and occlusion are the same for an image at every level and
    in every run)."""
    blank: float
    mask: Tensor | None
    generator: torch.Generator

    def sequence(self, images: Tensor, shown: Tensor, other: Tensor | None = None) -> Tensor:
        """Frames showing `images` at the steps where `shown` (a bool per step) holds, `other` (the blank by
        default) at the others: (batch, steps, C, H, W)."""
        other = images.new_full(images.shape, self.blank) if other is None else other
        return torch.where(shown.view(1, -1, 1, 1, 1).to(images.device), images.unsqueeze(1), other.unsqueeze(1))


Frames = Callable[[Tensor, int, Any, Context], Tensor]


@dataclass(frozen=True)
class Experiment:
    name: str
    frames: Frames  # (images, steps, level, context) -> (batch, steps, C, H, W)
    levels: Callable[[int], list]  # the run's steps -> the levels tried by default
    parameter: str  # what the levels are, as tables and plots say it
    needs_mask: bool = False
    doc: str = field(default="", compare=False)


EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(name: str, levels: Sequence | Callable[[int], list], parameter: str,
                        needs_mask: bool = False) -> Callable[[Frames], Frames]:
    """Register a paradigm under `name`: a function (images, steps, level, context) -> frames, tried at
    `levels` (a list, or a function of the run's steps giving one)."""
    if not name.isidentifier():
        raise ValueError(f"an experiment's name is a word (letters, digits, _); got {name!r}")

    def add(frames: Frames) -> Frames:
        given = levels if callable(levels) else (lambda _steps, fixed=list(levels): fixed)
        EXPERIMENTS[name] = Experiment(name, frames, given, parameter, needs_mask,
                                       (frames.__doc__ or "").strip().splitlines()[0] if frames.__doc__ else "")
        return frames
    return add


def experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"no experiment {name!r}; the experiments are {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def _steps(steps: int) -> Tensor:
    return torch.arange(steps)


@register_experiment("duration", levels=lambda steps: list(range(1, steps + 1)), parameter="steps shown")
def duration(images: Tensor, steps: int, level: int, context: Context) -> Tensor:
    """The image shown for the first `level` steps, then the blank."""
    return context.sequence(images, _steps(steps) < level)


@register_experiment("interval", levels=lambda steps: list(range(0, max(1, steps - 1))), parameter="gap (steps)")
def interval(images: Tensor, steps: int, level: int, context: Context) -> Tensor:
    """The image shown at step 0, a blank gap of `level` steps, and the image again for one step (a gap of 0:
    two steps of one showing); blank after. Adaptation: the response to the second over the first."""
    t = _steps(steps)
    return context.sequence(images, (t == 0) | (t == level + 1))


@register_experiment("contrast", levels=[0.0, 0.1, 0.25, 0.5, 1.0], parameter="contrast")
def contrast(images: Tensor, steps: int, level: float, context: Context) -> Tensor:
    """The image at every step, its difference from the blank scaled by `level` (0: the blank itself)."""
    scaled = context.blank + level * (images - context.blank)
    return scaled.unsqueeze(1).expand(-1, steps, -1, -1, -1)


@register_experiment("noise", levels=[0.0, 0.5, 1.0, 2.0], parameter="noise (sd)")
def noise(images: Tensor, steps: int, level: float, context: Context) -> Tensor:
    """The image at every step with Gaussian noise of sd `level` added (the same noise at every step)."""
    noisy = images + level * torch.randn(images.shape, generator=context.generator).to(images)
    return noisy.unsqueeze(1).expand(-1, steps, -1, -1, -1)


@register_experiment("occlusion", levels=[0.0, 0.25, 0.5, 0.75], parameter="occluded fraction")
def occlusion(images: Tensor, steps: int, level: float, context: Context) -> Tensor:
    """The image at every step with a `level` fraction of its 4x4 grid of patches set to the blank (the same
    patches at every step; a patch hidden at one level stays hidden at the higher ones)."""
    b, _, h, w = images.shape
    rank = torch.rand((b, 16), generator=context.generator).argsort(1).argsort(1)  # each patch's place in line
    hidden = (rank < round(16 * level)).view(b, 1, 4, 4).float()
    hidden = torch.nn.functional.interpolate(hidden, size=(h, w), mode="nearest").to(images.device).bool()
    occluded = torch.where(hidden, torch.full_like(images, context.blank), images)
    return occluded.unsqueeze(1).expand(-1, steps, -1, -1, -1)


@register_experiment("mask", levels=lambda steps: list(range(1, steps + 1)), parameter="steps before the mask",
                     needs_mask=True)
def mask(images: Tensor, steps: int, level: int, context: Context) -> Tensor:
    """Backward masking: the image for the first `level` steps (the stimulus-onset asynchrony), then a mask
    (a superposition of other images) at every step after."""
    return context.sequence(images, _steps(steps) < level, context.mask)
