"""The benchmark's normalisation and aggregate by hand, and ``hypergym bench`` end to end on a tiny task."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rliable")

from hypergym import bench as bench_module
from hypergym.bench import BOARD, Task, aggregate, normaliser, task_study, tasks_of


def test_a_task_score_is_zero_at_the_static_default_and_one_a_span_of_the_fixed_rates_or_the_noise():
    scores = {"static": [10.0, 12.0], "fixed lr 0.001": [11.0, 11.0], "fixed lr 0.002": [20.0, 22.0], "EPGT": [16.0]}
    zero, scale, what = normaliser(scores)
    assert (zero, scale) == (11.0, 10.0) and what == "1 = fixed lr 0.002 minus fixed lr 0.001 (10)"
    # a default that is nearly the best does not shrink the scale (the best's gain over it would be 0.5)
    zero, scale, _ = normaliser({"static": [20.0], "fixed lr 0.001": [20.5], "fixed lr 0.002": [15.0]})
    assert (zero, scale) == (20.0, 5.5)
    # rates that change nothing give no unit: the default's noise over seeds does (standard deviation 4)
    zero, scale, what = normaliser({"static": [16.0, 24.0], "fixed lr 0.001": [20.0], "fixed lr 0.002": [20.5]})
    assert (zero, scale) == (20.0, pytest.approx(np.std([16.0, 24.0], ddof=1))) and "standard deviation" in what


def test_the_aggregate_is_rliables_iqm_with_intervals_and_probability_of_improvement():
    from scipy.stats import trim_mean

    rng = np.random.default_rng(0)
    scores = {
        "static": rng.normal(0, 1, (10, 4)),
        "good": rng.normal(1.5, 1, (10, 4)),
        "same": rng.normal(0, 1, (10, 4)),
    }
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    first, second = aggregate(scores, draws=300), aggregate(scores, draws=300)
    assert first == second and np.array_equal(np.random.get_state()[1], before)  # seeded; the global RNG left alone  # noqa: NPY002
    for name, matrix in scores.items():
        assert first[name]["iqm"] == pytest.approx(trim_mean(matrix.ravel(), 0.25))
        assert first[name]["iqm_low"] < first[name]["iqm"] < first[name]["iqm_high"]
    assert first["good"]["p_low"] > 0.75 and first["same"]["p_low"] < 0.5 < first["same"]["p_high"]
    assert "p_improve" not in first["static"]


def test_the_suite_spans_the_learners_and_families_and_a_grid_of_over_100_actions():
    import gymnasium as gym

    tasks = tasks_of("all")
    assert {t.split for t in tasks} == {"tuning", "test"} and len(tasks) >= 6
    assert {t.env_id.split("-")[1] for t in tasks} == {"A2C", "ACKTR", "PPO"}
    assert any("HalfCheetah" in t.env_id for t in tasks) and any("Lunar" in t.env_id for t in tasks)
    sizes = [gym.make(t.env_id, **{**t.env_kwargs, "obs_mode": "random"}).unwrapped.space.n_actions for t in tasks]
    assert max(sizes) >= 100
    acktr = next(t for t in tasks if "ACKTR" in t.env_id)
    assert "HOOF" not in [a.label for a in task_study(acktr).arms]  # HOOF scores A2C and PPO updates only
    with pytest.raises(ValueError, match="tuning, test or all"):
        tasks_of("train")


def test_bench_runs_a_new_agent_only_and_prints_its_row_beside_the_stored_board(tmp_path, monkeypatch, capsys):
    budget = {"total_env_steps": 600, "updates_per_phase": 5, "policy_kwargs": {"net_arch": [16]}}
    tiny = Task("cartpole-tiny", "HyperRL-A2C-CartPole", "paper", "test", budget, seeds=2)
    monkeypatch.setattr(bench_module, "TASKS", (tiny,))
    monkeypatch.setattr(bench_module, "BOARD", tuple(e for e in BOARD if e.label in ("static", "random")))
    board = bench_module.bench([], "test", tmp_path / "board", workers=1, remake=True)
    data = json.loads((tmp_path / "board" / "bench.json").read_text())["tasks"]["cartpole-tiny"]
    assert {"static", "random"} <= set(data) and any(k.startswith("fixed lr") for k in data)
    assert all(len(v) == 2 for v in data.values()) and "| static |" in board and "| random |" in board
    monkeypatch.setattr(bench_module, "stored", lambda: {"cartpole-tiny": data})
    from hypergym.cli import main

    assert main(["bench", "episodic", "--tasks", "test", "--out", str(tmp_path / "new"), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| episodic |" in printed and "| random |" in printed and (tmp_path / "new" / "bench-test.png").is_file()
    assert not (tmp_path / "new" / "cartpole-tiny" / "HyperRL-A2C-CartPole" / "random").exists()  # not rerun


def test_an_entry_on_some_tasks_is_aggregated_over_those_against_static_on_the_same():
    from scipy.stats import trim_mean

    from hypergym.bench import leaderboard

    tasks = tasks_of("test")[:2]
    rng = np.random.default_rng(1)
    scores = {t.name: {"static": list(rng.normal(0, 1, 10)), "fixed lr 1": [0.0] * 10, "fixed lr 2": [2.0] * 10,
                       "random": list(rng.normal(0, 1, 10))} for t in tasks}  # fmt: skip
    scores[tasks[0].name]["HOOF"] = list(rng.normal(4, 1, 10))  # HOOF on the first task only
    board = leaderboard(tasks, scores)
    row = next(line for line in board.splitlines() if line.startswith("| HOOF"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "HOOF (on 1 of 2 tasks)" and cells[-1] == "n/a"
    zero, scale, _ = normaliser(scores[tasks[0].name])
    expected = trim_mean((np.asarray(scores[tasks[0].name]["HOOF"]) - zero) / scale, 0.25)
    assert cells[1].startswith(f"{expected:.2f} [") and cells[2].startswith("1.00")  # above every static run
    assert "| random | " in board  # the entries on every task as before


def test_the_docs_table_is_the_suite():
    import gymnasium as gym

    text = (Path(__file__).resolve().parent.parent / "docs" / "bench.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`HyperRL-" in line]
    assert len(rows) == len(tasks_of("all"))
    for row, task in zip(rows, tasks_of("all"), strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        n = gym.make(
            task.env_id, profile=task.profile, **{**task.env_kwargs, "obs_mode": "random"}
        ).unwrapped.space.n_actions
        assert cells[:5] == [
            task.name,
            f"`{task.env_id}`",
            task.profile,
            task.split,
            f"{task.env_kwargs['total_env_steps']:,}",
        ]
        assert cells[5].startswith(f"{n} ")


def test_verdicts_judge_each_new_agent_over_its_family_of_tasks():
    from hypergym.bench import tasks_of, verdicts

    tasks = tasks_of("test")[:2]
    rng = np.random.default_rng(0)
    base = {k: list(rng.normal(0, 1, 10)) for k in ("static", "random", "EPGT")}
    scores = {t.name: {**base, "GEM": list(rng.normal(0, 1, 10))} for t in tasks}
    scores[tasks[0].name]["GEM"] = list(np.asarray(base["static"]) + 5 + rng.normal(0, 0.1, 10))
    lines = verdicts(tasks, scores, judged=["GEM"]).splitlines()[2:]
    assert len(lines) == 6  # 3 comparisons x 2 tasks, one family
    calls = {(row.split("|")[2].strip(), row.split("|")[3].strip()): row.split("|")[-2].strip() for row in lines}
    assert calls[("static", tasks[0].name)] == "better" and calls[("static", tasks[1].name)] == "no difference"


def _docs_boards() -> list[list[list[str]]]:
    """docs/bench.md's three boards (all, test, tuning), each a list of rows of cells."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "bench.md").read_text()
    boards = []
    for block in text.split("| entry | IQM")[1:]:
        rows = block.splitlines()[2:]
        rows = rows[: rows.index("")]
        boards.append([[c.strip() for c in row.strip("|").split("|")] for row in rows])
    return boards


def test_the_docs_boards_show_the_stored_runs_means_and_iqms():
    """Fast: every row's per-task means and IQM (the intervals are the slow test's) from the shipped runs."""
    from scipy.stats import trim_mean

    from hypergym.bench import _matrix, stored

    boards = _docs_boards()
    assert len(boards) == 3
    for split, board in zip(("all", "test", "tuning"), boards, strict=True):
        tasks = tasks_of(split)
        matrix, where, _ = _matrix(tasks, stored())
        assert len(board) == len(matrix), f"{split}: the board's entries are not the stored ones"
        for cells in board:
            label = cells[0].split(" (on ")[0]
            means = [f"{np.mean(matrix[label][:, where[label].index(j)]):.2f}" if j in where[label] else "n/a"
                     for j in range(len(tasks))]  # fmt: skip
            assert cells[3:] == means, (split, label)
            assert cells[1].startswith(f"{trim_mean(matrix[label].ravel(), 0.25):.2f} ["), (split, label)


@pytest.mark.slow
def test_the_docs_boards_and_verdicts_are_what_the_stored_runs_give():
    from hypergym.bench import leaderboard, stored, verdicts

    page = (Path(__file__).resolve().parent.parent / "docs" / "bench.md").read_text()
    assert verdicts(tasks_of("test"), stored()) in page
    text = page
    for split in ("all", "test", "tuning"):  # the page shows them in this order
        board = leaderboard(tasks_of(split), stored())
        assert board in text, f"docs/bench.md's {split} board is not what `hypergym bench --tasks {split}` prints"
        text = text[text.index(board) + len(board) :]
