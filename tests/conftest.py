import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# `make test` explores the same examples every run (a red CI must be reproducible); `make fuzz`
# (HYPOTHESIS_PROFILE=fuzz) explores new ones, many more.
settings.register_profile("default", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

TESTS = Path(__file__).parent
ROOT = TESTS.parent

# A subprocess a test starts imports the cortexgraph the test imported (under `make mutate`, mutmut's
# mutated copy in mutants/), not the one an editable install points at.
IMPORTED_FROM = str(Path(importlib.util.find_spec("cortexgraph").origin).parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join([IMPORTED_FROM, *filter(None, [os.environ.get("PYTHONPATH")])])
VALID = sorted((TESTS / "specs" / "valid").glob("*.*"))
INVALID = sorted((TESTS / "specs" / "invalid").glob("*.yaml"))


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run only where a GPU is (`pytest -m cuda` selects them on a GPU machine)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda"):  # not `"cuda" in item.keywords`: a parameter named cuda is one
            item.add_marker(skip)


@pytest.fixture
def tmp_spec(tmp_path):
    """Write spec text to a file and return its path."""
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write
