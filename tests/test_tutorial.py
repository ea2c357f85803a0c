"""``docs/tutorial.md`` runs as written: its Python blocks in order, and its ``hypergym compare`` line."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import matplotlib
import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
#: The tutorial's budget lines and what the suite runs instead (a few seconds, not minutes).
SMALLER = {
    "BUDGET = 20_000": "BUDGET = 400",
    "SEEDS = 3": "SEEDS = 1",
}


def _blocks(language: str) -> list[str]:
    """The fenced blocks of ``language`` (``""``: fences without one), in order."""
    blocks, current, inside = [], [], None
    for line in TUTORIAL.read_text().splitlines(keepends=True):
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence and inside is None:
            inside, current = fence.group(1), []
        elif fence:
            if inside == language:
                blocks.append("".join(current))
            inside = None
        elif inside is not None:
            current.append(line)
    return blocks


def test_the_tutorials_python_blocks_run_in_order(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    code = "\n".join(_blocks("python"))
    for line, smaller in SMALLER.items():
        assert line in code, f"the tutorial no longer sets {line!r}: update SMALLER"
        code = code.replace(line, smaller)
    namespace: dict = {"__name__": "tutorial"}
    exec(compile(code, str(TUTORIAL), "exec"), namespace)
    assert sorted(p.name for p in (tmp_path / "runs" / "tutorial").iterdir() if p.is_dir()) == [
        "episodic", "random", "static", "ucb"
    ]  # fmt: skip
    assert Path(namespace["figure"]).stat().st_size > 0
    ucb_steps = (tmp_path / "runs" / "tutorial" / "ucb" / "seed0" / "steps.csv").read_text().splitlines()
    assert "agent_best_arm" in ucb_steps[0].split(",")  # its optional step_record reached steps.csv
    # UCB holds one arm for a whole phase (10 updates here), then tries another
    actions = [int(row.split(",")[5]) for row in ucb_steps[1:21]]
    assert len(set(actions[:10])) == 1 and len(set(actions[10:])) == 1 and actions[0] != actions[10]


def test_the_tutorials_ucb_concentrates_on_the_arm_whose_phases_returned_most(tmp_path):
    """Section 5's lesson, on the tutorial's class as printed. A UCB that chose an arm at every step credited
    all five arms with each phase's G and pulled each one a fifth of the time: this failed for it."""
    import csv
    from collections import Counter

    import gymnasium as gym
    import numpy as np

    import hypergym

    (block,) = [b for b in _blocks("python") if b.startswith("class UCB")]
    namespace: dict = {"np": np}
    exec(compile(block, str(TUTORIAL), "exec"), namespace)
    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=20_000, obs_mode="random")  # UCB ignores obs
    agent = namespace["UCB"](env, seed=1)
    result = hypergym.run(env, agent, seed=1, out=tmp_path / "ucb", progress=False)
    assert result.learning_episodes == 100
    actions = Counter(int(row["action"]) for row in csv.DictReader((tmp_path / "ucb" / "steps.csv").open()))
    arm, count = actions.most_common(1)[0]
    assert count >= 0.5 * result.hyper_steps, actions  # one arm held for at least half of the run
    assert arm == int(np.argmax(agent.value))  # the arm with the best mean G


def test_the_tutorials_compare_command_runs_the_users_class(tmp_path, monkeypatch, capsys):
    from hypergym.cli import main

    (shell,) = [b for b in _blocks("") if b.startswith("hypergym compare")]
    command = shlex.split(shell.replace("\\\n", " ").splitlines()[0])
    ucb = next(b for b in _blocks("python") if b.startswith("class UCB"))
    (tmp_path / "my_agents.py").write_text("import numpy as np\n\n\n" + ucb)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_agents", raising=False)  # another test's my_agents may be imported
    monkeypatch.chdir(tmp_path)
    args = [a.replace("total_env_steps=20000", "total_env_steps=300") for a in command[1:]]
    args[args.index("--seeds") + 1] = "1"
    assert main([*args, "--workers", "1", "--out", str(tmp_path / "cmp")]) == 0
    assert "my_agents:UCB" in capsys.readouterr().out
    assert (tmp_path / "runs" / "tb" / "my_agents-UCB" / "seed0").is_dir()


def test_the_notebook_is_the_tutorial_and_runs_at_a_small_budget(tmp_path):
    """``docs/tutorial.ipynb`` is paired with ``tutorial.md`` (jupytext) and runs top to bottom in a kernel."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    notebook = jupytext.read(TUTORIAL.with_suffix(".ipynb"))
    paired = jupytext.read(TUTORIAL)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    remake = "rerun: jupytext --to ipynb --output docs/tutorial.ipynb docs/tutorial.md"
    assert code == [c.source for c in paired.cells if c.cell_type == "code"], remake
    for cell in notebook.cells:
        for line, smaller in SMALLER.items():
            cell.source = cell.source.replace(line, smaller)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "action 3 is" in outputs and "final return +- sd" in outputs
    assert (tmp_path / "runs" / "tutorial" / "comparison.png").stat().st_size > 0


def test_the_solutions_run_and_exercise_1_gives_what_they_say(tmp_path, monkeypatch):
    """``docs/tutorial-solutions.md`` runs (after the tutorial's UCB); c = 10 settles on one arm, c = 1000 goes
    round the arms (seed 1, as the table measured)."""
    import numpy as np

    monkeypatch.chdir(tmp_path)
    solutions = TUTORIAL.with_name("tutorial-solutions.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```$", solutions, flags=re.S | re.M)
    (ucb,) = [b for b in _blocks("python") if b.startswith("class UCB")]
    namespace: dict = {"np": np}
    exec(compile(ucb, str(TUTORIAL), "exec"), namespace)
    exec(compile("\n".join(blocks), "tutorial-solutions.md", "exec"), namespace)
    pulls_of = namespace["pulls_of"]
    settled, _ = pulls_of(namespace["UCB"], seed=1, c=10.0)
    spread, _ = pulls_of(namespace["UCB"], seed=1, c=1000.0)
    assert max(settled) >= 80 and max(spread) <= 21, (settled, spread)
    import gymnasium as gym

    import hypergym

    env = gym.make("HyperRL-A2C-CartPole", total_env_steps=2000, obs_mode="vae")
    agent = namespace["StateUCB"](env, seed=0)
    assert hypergym.run(env, agent, seed=0, progress=False).learning_episodes == 10
    assert agent.pulls.sum() == 10
