from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent
VALID = sorted((TESTS / "specs" / "valid").glob("*.*"))
INVALID = sorted((TESTS / "specs" / "invalid").glob("*.yaml"))


@pytest.fixture
def tmp_spec(tmp_path):
    """Write spec text to a file and return its path."""
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write
