"""`cortexgraph sweep --storage` on a real PostgreSQL server (issue 31): a throwaway cluster started on localhost
(Debian's package, which `make test` installs), shared by two workers; skipped with a one-line reason only where
it cannot be started."""

from __future__ import annotations

import pytest

from cortexgraph.cli import main

from .postgres import Unavailable, cluster
from .test_sweep import folder  # noqa: F401 - the fixture: test_sweep.py's two tiny specs and 2x2 grid

optuna = pytest.importorskip("optuna")

@pytest.fixture(scope="module")
def postgres_url():
    try:
        with cluster("sweeps") as url:
            yield url
    except Unavailable as exc:
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")


def test_two_workers_share_a_grid_on_a_postgresql_server(postgres_url, folder):  # noqa: F811
    assert main(["sweep", "grid.yaml", "--workers", "2", "--storage", postgres_url]) == 0
    study = optuna.load_study(study_name="grid", storage=postgres_url)
    done = [t for t in study.get_trials() if not t.user_attrs.get("surplus")]
    assert sorted((t.params["spec"], t.params["seed"]) for t in done) == [("a.yaml", 0), ("a.yaml", 1),
                                                                        ("b.yaml", 0), ("b.yaml", 1)]
    assert all(t.state.name == "COMPLETE" for t in done)
    out = folder / "sweeps" / "grid"
    assert (out / "sweep.yaml").is_file() and not (out / "study.db").exists()  # the study is on the server
    assert main(["sweep", "report", "grid.yaml", "--storage", postgres_url]) == 0
    rows = (out / "configurations.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [["a.yaml", "2"], ["b.yaml", "2"]]
    assert not (out / "study.db").exists()


def test_a_server_that_is_not_running_is_one_line(folder, capsys):  # noqa: F811
    url = "postgresql://postgres:secret@127.0.0.1:1/none"
    assert main(["sweep", "grid.yaml", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    # (the password is not said)
    assert err.startswith("cortexgraph: cannot open the study's storage postgresql://postgres:***@127.0.0.1:1/none: ")
    assert not (folder / "sweeps").exists()  # nothing left behind
    assert main(["sweep", "report", "grid.yaml", "--storage", url]) == 2
    assert capsys.readouterr().err.splitlines() == err.splitlines()
