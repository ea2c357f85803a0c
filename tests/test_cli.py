from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import hypergym
from hypergym.cli import main, parse_assignments

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = ["--set", "policy_kwargs={'net_arch': [16]}", "device='cpu'"]


def test_demo_with_a_tiny_setting_writes_the_table_and_the_png(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--steps", "300", "--seeds", "2", "--workers", "1", "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    for agent in ("episodic", "static", "random"):
        assert agent in text
    assert "final return" in text
    png = out / "demo.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 10_000
    assert len(list(out.rglob("summary.json"))) == 6


def test_compare_runs_in_worker_processes_and_reuses_finished_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "HyperRL-A2C-CartPole", "--agents", "random,static-max", "--seeds", "2", "--workers", "2"]
    args += ["--out", str(out), "--set", "total_env_steps=200", "policy_kwargs={'net_arch': [16]}", "device='cpu'"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "0 already finished, 4 to run on 2 worker(s)" in first
    summaries = sorted(out.rglob("summary.json"))
    assert len(summaries) == 4
    stamps = [p.stat().st_mtime_ns for p in summaries]
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "4 already finished, 0 to run" in second
    assert [p.stat().st_mtime_ns for p in summaries] == stamps
    assert (out / "comparison.png").read_bytes()[:8] == PNG_SIGNATURE
    config = json.loads((out / "static-max" / "seed1" / "config.json").read_text())
    assert config["agent_label"] == "static-max" and config["seed"] == 1


def test_workers_are_spawned_once_cuda_is_initialised_and_give_the_same_numbers(tmp_path, monkeypatch, capsys):
    """A child forked after CUDA's initialisation cannot use it; the pool then spawns its workers instead."""
    import multiprocessing

    import torch

    from hypergym.devices import worker_context

    assert worker_context().get_start_method() == multiprocessing.get_start_method()
    args = ["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--seeds", "2", "--workers"]
    args_tail = ["--set", "total_env_steps=200", "policy_kwargs={'net_arch': [16]}", "device='cpu'"]
    assert main([*args, "1", "--out", str(tmp_path / "inline"), *args_tail]) == 0
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # as on a GPU machine after check_agents
    assert worker_context().get_start_method() == "spawn"
    assert main([*args, "2", "--out", str(tmp_path / "spawned"), *args_tail]) == 0
    capsys.readouterr()
    for seed in (0, 1):
        inline, spawned = (json.loads((tmp_path / d / "random" / f"seed{seed}" / "summary.json").read_text())
                           for d in ("inline", "spawned"))  # fmt: skip
        assert spawned["env_steps"] == inline["env_steps"] >= 200
        assert spawned["final_return"] == inline["final_return"] and spawned["mean_G"] == inline["mean_G"]


def test_run_many_submits_populations_before_single_runs(tmp_path, monkeypatch, capsys):
    """Longest job first: a population of N is about N runs' work, so it must not start last and run alone."""
    from concurrent.futures import Future

    from hypergym import jobs

    submitted: list[str] = []

    class RecordingPool:
        def __init__(self, max_workers: int, mp_context: object) -> None:
            pass

        def __enter__(self) -> RecordingPool:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def submit(self, fn: object, spec: jobs.RunSpec, table: object) -> Future:
            submitted.append(spec.agent)
            future: Future = Future()
            summary = {"final_return": 0.0, "env_steps": 1, "wall_seconds": 1.0, "env_steps_per_second": 1.0}
            future.set_result([summary] * len(spec.run_dirs()))
            return future

    monkeypatch.setattr(jobs, "ProcessPoolExecutor", RecordingPool)
    specs = [jobs.RunSpec("HyperRL-A2C-CartPole", "random", s, str(tmp_path / f"r{s}")) for s in range(2)]
    specs.append(jobs.RunSpec("HyperRL-A2C-CartPole", "pbt", 0, str(tmp_path / "pbt"), members=4))
    specs.append(jobs.RunSpec("HyperRL-A2C-CartPole", "static", 0, str(tmp_path / "static"), members=2))
    results = jobs.run_many(specs, workers=2)
    assert submitted == ["pbt", "static", "random", "random"]
    assert len(results) == 8
    capsys.readouterr()


def test_run_writes_a_run_directory(tmp_path, capsys):
    out = tmp_path / "one"
    argv = ["run", "HyperRL-A2C-CartPole", "--agent", "episodic", "--seed", "3", "--out", str(out), *TINY]
    assert main([*argv, "total_env_steps=4000"]) == 0
    assert (out / "steps.csv").is_file() and (out / "summary.json").is_file()
    assert "run directory" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["run", "HyperRL-PPO-Cartpole", "--agent", "random"], "registered ids are"),
        (["run", "HyperRL-A2C-CartPole", "--agent", "ppo"], "choose from"),
        (["run", "HyperRL-A2C-CartPole", "--agent", "random", "--set", "lr=0.1"], "valid are"),
        (["compare", "HyperRL-A2C-CartPole", "--agents", "random,oracle"], "choose from"),
        (["run", "HyperRL-A2C-CartPole", "--agent", "random", "--set", "lr"], "key=value"),
        (["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--seeds", "0"], "--seeds must be an integer >= 1"),
        (["compare", "HyperRL-A2C-CartPole", "--agents", ","], "--agents names no agent"),
        (["compare", "HyperRL-A2C-CartPole", "--agents", "pbt", "--seeds", "1"], "give --seeds 2 or more"),
        (["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--workers", "0"], "--workers must be"),
        (["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--address", "auto"], "add --backend ray"),
        (
            ["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--backend", "ray", "--address", "127.0.0.1:1"],
            "cannot reach the Ray cluster at '127.0.0.1:1' within 10 s",
        ),
        (["run", "HyperRL-A2C-CartPole", "--agent", "random", "--seed", "-1"], "--seed must be >= 0"),
        (
            ["run", "HyperRL-A2C-CartPole", "--agent", "static", "--agent-set", "index=annoy"],
            "its arguments are: action",
        ),
        (
            ["compare", "HyperRL-A2C-CartPole", "--agents", "episodic,random", "--agent-set", "capacity=8"],
            "random on HyperRL-A2C-CartPole: --agent-set ['capacity'] holds an argument it does not take",
        ),
        (
            ["compare", "HyperRL-A2C-CartPole", "--agents", "episodic", "--agent-set", "write_every=0"],
            "episodic on HyperRL-A2C-CartPole: write_every must be a positive integer",
        ),
        (["run", "HyperRL-ACKTR-CartPole", "--agent", "hoof"], "HOOF supports A2C and PPO"),
        (["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--set", "n_envs=0"], "n_envs must be"),
        (
            [
                "run",
                "HyperRL-A2C-CartPole",
                "--agent",
                "random",
                "--checkpoint-every",
                "5",
                "--checkpoint-minutes",
                "2",
            ],
            "both say when to checkpoint: give one",
        ),
        (
            ["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--checkpoint-minutes", "-1"],
            "--checkpoint-minutes must be a finite number >= 0",
        ),
    ],
)
def test_errors_list_the_valid_choices_and_exit_non_zero(argv, match, capsys):
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_compare_checks_every_agent_on_its_env_before_any_run_starts(tmp_path, capsys):
    argv = ["compare", "HyperRL-ACKTR-CartPole", "--agents", "random,pbt,hoof", "--seeds", "2", "--out", str(tmp_path),
            "--set", "total_env_steps=800"]  # fmt: skip
    assert main(argv) == 2
    assert "hoof on HyperRL-ACKTR-CartPole: HOOF supports A2C and PPO" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither random's runs nor pbt's population started


def test_a_resume_with_other_settings_exits_2_with_the_reason(tmp_path, capsys):
    from hypergym.checkpoint import write_checkpoint

    write_checkpoint(tmp_path / "checkpoint.ckpt", {"kind": "run", "config": "{}", "env": None, "agent": None})
    argv = ["run", "HyperRL-A2C-CartPole", "--agent", "random", "--set", "total_env_steps=200", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "was written by a run with other settings" in capsys.readouterr().err


def test_list_prints_every_registered_id(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert all(env_id in text for env_id in hypergym.PRESETS)


def test_plot_of_finished_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    main(
        [
            "compare",
            "HyperRL-A2C-CartPole",
            "--agents",
            "random",
            "--seeds",
            "1",
            "--workers",
            "1",
            "--out",
            str(out),
            "--set",
            "total_env_steps=200",
            "policy_kwargs={'net_arch': [16]}",
        ]
    )
    from hypergym.plots import load_runs

    runs = load_runs([out])
    assert len(runs) == 1 and runs[0].tuned == ["learning_rate"] and runs[0].label == "random"
    assert len(runs[0].env_steps) == runs[0].summary["hyper_steps"]
    png = tmp_path / "plot.png"
    table = tmp_path / "runs.csv"
    assert main(["plot", str(out), "--out", str(png), "--csv", str(table)]) == 0
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    lines = table.read_text().splitlines()
    assert lines[0].startswith("agent,seed,final_return") and lines[1].startswith("random,0,")
    assert main(["plot", str(tmp_path / "nothing"), "--out", str(png)]) == 2


def test_console_script_is_declared_and_module_runs():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("hypergym") == "hypergym.cli:main"
    out = subprocess.run([sys.executable, "-m", "hypergym.cli", "list"], capture_output=True, text=True, check=True)
    assert "HyperRL-PPO-HalfCheetah" in out.stdout


def test_parse_assignments():
    assert parse_assignments(["a=1", "b=[1, 2]", "c=vae", "d={'x': 2}"]) == {
        "a": 1,
        "b": [1, 2],
        "c": "vae",
        "d": {"x": 2},
    }


def test_compare_runs_each_agents_seeds_as_one_population_unless_told_single_runs(tmp_path):
    from hypergym.cli import main

    out = tmp_path / "cmp"
    args = ["compare", "HyperRL-A2C-CartPole", "--agents", "random,static", "--seeds", "2",
            "--set", "total_env_steps=300", "obs_mode=random", "n_envs=2"]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    assert main([*args, "--single-runs", "--out", str(tmp_path / "single")]) == 0
    for agent in ("random", "static"):
        for seed in (0, 1):
            config = json.loads((out / agent / f"seed{seed}" / "config.json").read_text())
            assert config["population"] == 2 and config["seed"] == seed
            alone = tmp_path / "single" / agent / f"seed{seed}"
            assert "population" not in json.loads((alone / "config.json").read_text())
            # A member trains as the single run of its seed does (its own sampling streams, its own agent seed).
            member = json.loads((out / agent / f"seed{seed}" / "summary.json").read_text())
            single = json.loads((alone / "summary.json").read_text())
            assert member["final_return"] == single["final_return"] and member["env_steps"] == single["env_steps"]
    assert (out / "comparison.png").is_file()


def test_compare_runs_population_methods_as_populations_and_single_agents_alone(tmp_path, capsys):
    from hypergym.cli import main

    out = tmp_path / "cmp"
    status = main(
        ["compare", "HyperRL-A2C-CartPole", "--agents", "pbt,hoof", "--seeds", "2", "--workers", "1",
         "--set", "total_env_steps=300", "obs_mode=random", "n_envs=2", "--out", str(out)]
    )  # fmt: skip
    assert status == 0
    assert json.loads((out / "pbt" / "seed1" / "config.json").read_text())["population"] == 2
    assert "population" not in json.loads((out / "hoof" / "seed1" / "config.json").read_text())
    assert main(["run", "HyperRL-A2C-CartPole", "--agent", "pb2", "--out", str(out / "x")]) == 2
    assert "trains a population" in capsys.readouterr().err


def _table_rows(text: str) -> dict[str, list[str]]:
    """The summary table's rows by agent, without the speed column (wall time varies between runs)."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()  # agent, seeds, mean, "+-", std, best G, env steps/s, diverged
        if len(parts) == 8 and parts[0] in ("episodic", "random", "static") and parts[1].isdigit():
            rows[parts[0]] = [*parts[1:6], parts[7]]
    return rows


def test_the_readme_demo_table_is_what_hypergym_demo_prints(tmp_path):
    """The README's demo table (all but the speed column) is a fresh ``hypergym demo`` run's output.

    The static and random rows are the same on every machine so far and are compared exactly. The EPGT row
    depends on the CPU kind (three machines, three rows, each the same on every rerun there: its kNN choices
    amplify float rounding), so only its seeds and divergences are compared, and the README lists the rows
    measured elsewhere.
    """
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("it took", 1)[1].split("```", 2)[1]
    expected = _table_rows(block)
    assert set(expected) == {"episodic", "random", "static"}
    out = subprocess.run(
        [sys.executable, "-m", "hypergym.cli", "demo", "--out", str(tmp_path / "demo")],
        capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    rows = _table_rows(out.stdout)
    assert set(rows) == set(expected), out.stdout
    assert rows["static"] == expected["static"] and rows["random"] == expected["random"], out.stdout
    seeds, mean, _, std, best, diverged = rows["episodic"]
    assert (seeds, diverged) == (expected["episodic"][0], expected["episodic"][5]), out.stdout
    assert all(math.isfinite(float(x)) for x in (mean, std, best)), out.stdout


def test_compare_runs_a_users_agent_class_beside_the_built_in_ones(tmp_path, monkeypatch, capsys):
    """``--agents package.module:ClassName``: a user's two-method agent in the same table as ``static``."""
    (tmp_path / "my_agents.py").write_text(
        "class AlwaysMax:\n"
        "    def __init__(self, env, seed=None):\n"
        "        self.action = env.action_space.n - 1\n"
        "    def act(self, obs, info):\n"
        "        return self.action\n"
        "    def observe(self, transition):\n"
        "        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "cmp"
    args = ["compare", "HyperRL-A2C-CartPole", "--agents", "my_agents:AlwaysMax,static", "--seeds", "2"]
    args += ["--workers", "1", "--out", str(out), "--set", "total_env_steps=300", "obs_mode='random'", *TINY[1:]]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "my_agents:AlwaysMax" in table and "static" in table
    steps = (out / "my_agents-AlwaysMax" / "seed1" / "steps.csv").read_text().splitlines()  # a portable name
    learning_rates = {row.split(",")[steps[0].split(",").index("hp_learning_rate")] for row in steps[1:]}
    assert learning_rates == {str(max(hypergym.PRESETS["HyperRL-A2C-CartPole"]["hyperparams"]["learning_rate"]))}
    assert main(["compare", "HyperRL-A2C-CartPole", "--agents", "my_agents:Missing", "--seeds", "1"]) == 2
    assert "cannot import agent class 'my_agents:Missing'" in capsys.readouterr().err


def test_every_command_line_run_uses_one_torch_thread_inline_or_in_a_worker(tmp_path, monkeypatch):
    """Torch's reductions depend on the thread count: a run must not get other floats under --workers 1."""
    import torch

    from hypergym.jobs import RunSpec, execute

    (tmp_path / "thread_probe.py").write_text(
        "import torch\n"
        "class Probe:\n"
        "    threads = set()\n"
        "    def act(self, obs, info):\n"
        "        Probe.threads.add(torch.get_num_threads())\n"
        "        return 0\n"
        "    def observe(self, transition):\n"
        "        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import thread_probe

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        settings = {"total_env_steps": 200, "obs_mode": "random", "policy_kwargs": {"net_arch": [8]}}
        execute(RunSpec("HyperRL-A2C-CartPole", "thread_probe:Probe", 0, str(tmp_path / "run"), settings))
        assert thread_probe.Probe.threads == {1} and torch.get_num_threads() == 2  # restored afterwards
        seen = []

        class Probed(Exception):
            pass

        def probe(*args, **kwargs):
            seen.append(torch.get_num_threads())
            raise Probed

        monkeypatch.setattr("hypergym.runner._drive", probe)
        with pytest.raises(Probed):
            execute(RunSpec("HyperRL-A2C-CartPole", "random", 0, str(tmp_path / "pop"), settings, members=2))
        assert seen == [1]
    finally:
        torch.set_num_threads(before)


def test_every_pool_of_runs_checks_its_workers_and_backend_itself():
    """``reproduce`` reaches run_many without compare's checks: the pool refuses bad settings on its own."""
    from hypergym.jobs import CLIError, run_many

    with pytest.raises(CLIError, match="--workers must be an integer >= 1, got 0"):
        run_many([], workers=0)
    with pytest.raises(CLIError, match="unknown backend 'dask'"):
        run_many([], workers=1, backend="dask")
    with pytest.raises(CLIError, match="add --backend ray"):
        run_many([], workers=1, address="auto")
    assert run_many([], workers=1) == []


def test_a_run_folder_has_one_writer_and_a_dead_writers_lock_is_taken_over(tmp_path, capsys):
    """Two writers of one folder interleaved their rows; now the second refuses at once, before writing."""
    import socket
    import subprocess

    import gymnasium as gym

    from hypergym.agents import make_agent
    from hypergym.cli import main
    from hypergym.runlock import LOCK_FILE, RunFolderBusy

    settings = ["--set", "total_env_steps=100", "obs_mode=random", "n_envs=2"]
    assert main(["compare", "HyperRL-A2C-CartPole", "--agents", "static,static", "--out", str(tmp_path / "x"),
                 *settings]) == 2  # fmt: skip
    assert "names ['static'] more than once" in capsys.readouterr().err
    live = subprocess.Popen(["sleep", "60"])
    try:
        out = tmp_path / "busy"
        out.mkdir()
        (out / LOCK_FILE).write_text(f"{live.pid} {socket.gethostname()}")
        assert main(["compare", "HyperRL-A2C-CartPole", "--agents", "static", "--out", str(out), *settings]) == 2
        assert f"is being written by process {live.pid}" in capsys.readouterr().err
        env = gym.make("HyperRL-A2C-CartPole", total_env_steps=100, obs_mode="random", n_envs=2)
        with pytest.raises(RunFolderBusy, match="delete the lock file"):
            hypergym.run(env, make_agent("static", env), seed=0, out=out, progress=False)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written
    finally:
        live.kill()
        live.wait()
    # the same lock, its process now gone (as after a kill): taken over, the run goes on, the lock is released
    assert main(["compare", "HyperRL-A2C-CartPole", "--agents", "static", "--out", str(out), *settings]) == 0
    assert (out / "static" / "seed0" / "summary.json").is_file() and not list(out.rglob(LOCK_FILE))


def test_every_option_of_every_command_has_help_and_every_command_an_example(monkeypatch):
    from hypergym.agents import AGENTS

    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside names
    from hypergym.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert "example:\n  hypergym " + name in sub.epilog, name
        for action in sub._actions:
            assert action.help, (name, action.dest)
    compare_help = commands["compare"].format_help()
    assert all(agent in compare_help for agent in AGENTS) and "module:ClassName" in compare_help
    assert "(default: 3)" in compare_help and "(default: None)" not in compare_help


def test_run_many_shows_one_live_bar_over_the_env_steps_of_every_run_in_every_worker(tmp_path, monkeypatch):
    """Before, compare printed nothing until a run ended; now the workers' runs feed one bar (runs done, rate)."""
    from hypergym import callbacks, jobs

    closed = []

    class Recording(callbacks.StudyProgress):
        def close(self) -> None:
            super().close()
            closed.append((self.bar.n, self.bar.total, self.done, self.runs))

    monkeypatch.setattr(jobs, "StudyProgress", Recording)
    small = {"total_env_steps": 400, "obs_mode": "random", "policy_kwargs": {"net_arch": [8]}}
    specs = [jobs.RunSpec("HyperRL-A2C-CartPole", "static", s, str(tmp_path / f"r{s}"), small) for s in range(2)]
    specs.append(jobs.RunSpec("HyperRL-A2C-CartPole", "random", 0, str(tmp_path / "pop"), small, members=2))
    jobs.run_many(specs, workers=2)
    ((steps, total, done, runs),) = closed
    assert (done, runs) == (4, 4)
    assert steps == total == 4 * 420  # every run's env steps (its first rollout and 2 phases), from the workers
