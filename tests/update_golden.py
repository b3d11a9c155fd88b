"""Regenerate the golden drawings: `python tests/update_golden.py` (or `make golden`).

Review the result as a text diff (`git diff tests/golden`) before committing it.
"""

from pathlib import Path

from cortexgraph import draw
from cortexgraph.bundled import bundled_specs
from cortexgraph.drawing import VIEWS

GOLDEN = Path(__file__).parent / "golden"


def golden_path(name: str, view: str) -> Path:
    return GOLDEN / f"{name.replace('/', '__')}.{view}.dot"


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for name in bundled_specs():
        for view in VIEWS:
            golden_path(name, view).write_text(draw(name, view).source)
            print("wrote", golden_path(name, view))


if __name__ == "__main__":
    main()
