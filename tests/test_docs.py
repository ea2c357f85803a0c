"""Published figures stay true: cheap runs of a docs/results.md study are rerun and must give its CSV's numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hypergym.jobs import RunSpec, run_many
from hypergym.reproduce import STUDIES, arm_dir

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
#: (study, arm, seed) rerun: one cheap static run of Fig. 2a. The CSV was made on earlier machines; on other CPU
#: kinds float kernels round differently. Static seed 0, measured: best evaluation 97.912956 in the CSV, 97.912927
#: on an AMD EPYC and 97.912944 on an AMD EPYC with AVX-512 (2026-12-03); final training return 88.07, 87.83 and
#: 86.27. EPGT seed 0, whose kNN choices amplify rounding, gave 32.0 instead of 90.5. So only a static run is
#: rerun, its best evaluation (the paper's metric, a deterministic policy) compared to 1e-4 and its final
#: training return (stochastic episodes, where a rounding can move an episode's end) to 5%.
RERUN = (("fig2a", "static (code)", 0),)
#: Relative tolerance of each metric of the rerun against the CSV (on the machine that made it: equal to 1e-9).
REL = {"best_eval_return": 1e-4, "final_return": 5e-2, "env_steps": 0.0}


@pytest.mark.parametrize("study_name", sorted({s for s, _, _ in RERUN}))
def test_a_studys_csv_rows_are_what_its_runs_give_today(tmp_path, study_name):
    study = STUDIES[study_name]
    rows = {(r["arm"], int(r["seed"])): r for r in csv.DictReader((RESULTS / f"{study_name}.csv").open())}
    arms = {a.label: a for a in study.arms}
    specs, expected = [], []
    for name, label, seed in RERUN:
        if name != study_name:
            continue
        arm = arms[label]
        out = arm_dir(tmp_path, study.env_id, arm) / f"seed{seed}"
        env_kwargs = {**study.env_kwargs, **arm.env_kwargs, "profile": arm.profile}
        specs.append(RunSpec(study.env_id, arm.agent, seed, str(out), env_kwargs, arm.agent_kwargs, False, None))
        expected.append(rows[(label, seed)])
    # Two worker processes, as `hypergym reproduce --workers 2` ran them (one torch thread each).
    by_dir = {r["run_dir"]: r for r in run_many(specs, workers=2)}  # in the order they finish
    for spec, row in zip(specs, expected, strict=True):
        result = by_dir[spec.out]
        for metric, rel in REL.items():
            assert result[metric] == pytest.approx(float(row[metric]), rel=rel, abs=1e-9), (spec.agent, metric)


def test_the_kept_fig2b_runs_remake_its_csv_row_for_row(tmp_path):
    """The 110 finished runs of Fig. 2b live in one archive; unpacked, the report is remade from them (nothing
    runs: every run is finished and its files agree) and its CSV is the published one."""
    import tarfile

    from hypergym.reproduce import report

    with tarfile.open(RESULTS / "fig2b-runs.tar.xz") as archive:
        archive.extractall(tmp_path, filter="data")
    report(STUDIES["fig2b"], tmp_path, "test")
    made = sorted(map(tuple, csv.reader((tmp_path / "fig2b.csv").open())))
    assert made == sorted(map(tuple, csv.reader((RESULTS / "fig2b.csv").open())))
    assert len(made) == 151  # the header and 150 runs


def test_the_re_judged_verdicts_on_the_results_page_are_what_the_kept_csvs_give():
    """``docs/results.md``'s re-judged section is ``python docs/results/rejudge.py``'s output, digit for digit."""
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("rejudge", RESULTS / "rejudge.py")
    rejudge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rejudge)
    page = (RESULTS.parent / "results.md").read_text()
    (shown,) = re.findall(r"<!-- rejudge:start -->\n(.*?)<!-- rejudge:end -->", page, flags=re.S)
    assert shown == rejudge.section()
