"""The specs that ship with cortexgraph, found by name (`liao2016/frnn4-cifar`)."""

from __future__ import annotations

from pathlib import Path

from .errors import Problem, SpecError, did_you_mean

_SUFFIXES = (".yaml", ".yml", ".json")


def specs_dir() -> Path:
    """`cortexgraph/_specs` in an installed wheel; the repository's `specs/` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_specs", here.parent / "specs"):
        if candidate.is_dir():
            return candidate
    return here.parent / "specs"


def bundled_specs() -> dict[str, Path]:
    """Every bundled spec by name: its path under the specs folder, without the suffix."""
    root = specs_dir()
    if not root.is_dir():
        return {}
    return {str(p.relative_to(root).with_suffix("")): p
            for p in sorted(root.rglob("*")) if p.suffix in _SUFFIXES and p.is_file()}


def resolve(name_or_path: str) -> Path:
    """A path that exists, or a bundled spec's path; a clear error otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    specs = bundled_specs()
    name = name_or_path.removesuffix(path.suffix) if path.suffix in _SUFFIXES else name_or_path
    if name in specs:
        return specs[name]
    hint = did_you_mean(name, specs) or "`cortexgraph specs` lists the bundled specs"
    raise SpecError([Problem((), f"no such file or bundled spec: {name_or_path!r}", hint, file=name_or_path)])
