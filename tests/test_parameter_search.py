"""specs/README.md's table of the readings closest to the quoted parameter counts is what
examples/parameter_search.py finds (the search counts 8,866 specs without building them: about 15 s)."""

import importlib.util
import re
import sys

from .conftest import ROOT


def _search():
    spec = importlib.util.spec_from_file_location("parameter_search", ROOT / "examples" / "parameter_search.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["parameter_search"] = module
    spec.loader.exec_module(module)
    return module


def _table() -> dict[str, tuple[str, str]]:
    """figures -> (its counts, off by), from the README's rows."""
    text = (ROOT / "specs" / "README.md").read_text()
    section = text.split("## Which reading gives the quoted parameter counts?")[1].split("\nWhat we conclude")[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): (cells[2].strip(), cells[3].strip()) for cells in rows[1:]}


def test_the_readme_s_closest_readings_are_the_search_s():
    search = _search()
    rows = search.readings()
    assert len(rows) == 8866

    def best(kind, **where):
        mine = [r for r in rows if all(r[k] == v for k, v in where.items())]
        return min(mine, key=lambda r: r[f"distance_{kind}"]), kind

    def cells(found) -> tuple[str, str]:
        row, kind = found
        return f"{row['shared']:,} / {row[f'unshared_{kind}']:,}", f"{100 * row[f'distance_{kind}']:.1f}%"

    anywhere = min((best(kind, target="cifar") for kind in ("pruned", "every_call")),
                   key=lambda found: found[0][f"distance_{found[1]}"])
    table = _table()
    assert table["ImageNet 8.4M / 29M"] == cells(best("every_call", target="imagenet", family="frnn"))
    assert table["ImageNet, unshared = pruned calls"] == cells(best("pruned", target="imagenet", family="frnn"))
    assert table["CIFAR 187k / 778k, a CIFAR ResNet"] == cells(best("pruned", target="cifar", family="resnet"))
    assert table["CIFAR, any reading"] == cells(anywhere)
    assert re.fullmatch(r"\d+\.\d%", table["both, one set of ops"][1])
