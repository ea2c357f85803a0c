"""Files that reach a user: a full disk, an unwritable path or a corrupt run is one line and exit 2, and
never corrupts what was already written; a finished run is reused only when its files agree."""

from __future__ import annotations

import errno
import json
import os

import pytest

from hypergym.checkpoint import read_checkpoint
from hypergym.cli import main
from hypergym.files import atomic_write
from hypergym.rundir import CHECKPOINT_FILE, STEPS_JOURNAL

SMALL = ["--set", "total_env_steps=400", "obs_mode='random'", "policy_kwargs={'net_arch': [8]}"]


def _one_line_error(capsys, *parts: str) -> str:
    err = capsys.readouterr().err.split("\r")[-1]  # after the progress bar's last redraw
    assert err.startswith("hypergym: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err
    return err


def test_atomic_write_that_fails_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    atomic_write(path, "old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write(path, "new, half written")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_full_disk_mid_run_is_one_line_and_the_rerun_ends_as_the_uninterrupted_run(tmp_path, capsys, monkeypatch):
    import hypergym.rundir as rundir

    argv = ["run", "HyperRL-A2C-CartPole", "--agent", "random", "--checkpoint-every", "1", *SMALL,
            "total_env_steps=1000"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    real, calls = rundir.append_rows, [0]

    def fills_up(path, rows):  # the third journal write finds the disk full half-way through a line
        calls[0] += 1
        if calls[0] == 3:
            with path.open("a") as f:
                f.write('{"step": "1')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, rows)

    monkeypatch.setattr(rundir, "append_rows", fills_up)
    capsys.readouterr()
    out = tmp_path / "full"
    assert main([*argv, "--out", str(out)]) == 2
    _one_line_error(capsys, str(out / STEPS_JOURNAL), "No space left on device")
    json.loads((out / "config.json").read_text())  # what was written before is whole
    assert read_checkpoint(out / CHECKPOINT_FILE)["kind"] == "run"
    monkeypatch.undo()
    assert main([*argv, "--out", str(out)]) == 0  # space again: it resumes from its checkpoint
    assert (out / "steps.csv").read_text() == (tmp_path / "whole" / "steps.csv").read_text()


@pytest.mark.parametrize(
    ("png", "message"),
    [
        ("figure.xyz", "its format is one of"),
        ("a_file/figure.png", "is not a writable folder"),
        (".", "it is a folder"),
    ],
)
def test_an_unwritable_png_is_refused_before_any_run_starts(png, message, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "cmp"
    argv = ["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--seeds", "1", "--out", str(out),
            "--png", str(tmp_path / png), *SMALL]  # fmt: skip
    assert main(argv) == 2
    _one_line_error(capsys, "cannot write a figure to", message)
    assert not out.exists()


def test_an_out_that_is_a_file_is_one_line_naming_it(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("")
    assert main(["run", "HyperRL-A2C-CartPole", "--agent", "random", "--out", str(taken), *SMALL]) == 2
    _one_line_error(capsys, str(taken))
    assert main(["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--out", str(taken / "x"), *SMALL]) == 2
    _one_line_error(capsys, str(taken))


def test_a_bad_python_literal_in_set_exits_2_in_one_line(capsys):
    assert main(["run", "HyperRL-A2C-CartPole", "--agent", "random", "--set", "hyperparams={bad"]) == 2
    _one_line_error(capsys, "hyperparams")


def _finished(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "HyperRL-A2C-CartPole", "--agents", "random", "--seeds", "1", "--out", str(out), *SMALL]
    assert main(argv) == 0
    capsys.readouterr()
    return argv, out / "random" / "seed0"


CORRUPTIONS = {
    "summary not JSON": ("summary.json", lambda text: text[: len(text) // 2], "summary.json is corrupt"),
    "summary not an object": ("summary.json", lambda text: "[1, 2]", "summary.json is corrupt"),
    "config not JSON": ("config.json", lambda text: "{", "config.json is corrupt"),
    "rows cut short": ("steps.csv", lambda text: "\n".join(text.splitlines()[:-3]) + "\n", "steps.csv holds"),
    "rows twice": ("steps.csv", lambda text: text + "\n".join(text.splitlines()[1:]) + "\n", "steps.csv holds"),
    "rows missing": ("steps.csv", None, "steps.csv cannot be read"),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_a_corrupt_or_incomplete_finished_run_is_never_reused_nor_plotted(case, tmp_path, capsys):
    argv, run_dir = _finished(tmp_path, capsys)
    name, corrupt, message = CORRUPTIONS[case]
    path = run_dir / name
    if corrupt is None:
        path.unlink()
    else:
        path.write_text(corrupt(path.read_text()))
    assert main(argv) == 2  # not "reused"
    _one_line_error(capsys, message, f"delete {run_dir}")
    assert main(["plot", str(run_dir.parent), "--out", str(tmp_path / "p.png")]) == 2
    _one_line_error(capsys, str(path))
    assert not (tmp_path / "p.png").exists()


def test_a_reader_that_stops_early_is_not_an_error():
    """``hypergym list | head``: the closed pipe ends the command quietly (it was one error line, exit 2)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "hypergym.cli", "list"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0 and proc.stderr.read() == b""
