"""The README's snippets, exactly as printed: its Python blocks run, and its shell lines are what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _blocks(language: str) -> list[str]:
    """The README's fenced blocks of ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", README.read_text(), flags=re.S | re.M)


def test_the_readme_is_a_five_minute_read():
    assert len(README.read_text().splitlines()) <= 200


def test_every_python_block_of_the_readme_runs_as_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a block writes lands here
    blocks = _blocks("python")
    assert blocks
    for i, code in enumerate(blocks):
        namespace: dict = {"__name__": f"readme_block_{i}"}
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)
    assert namespace["info"]["env_steps"] > 0 and "G" in namespace["info"]  # the last block ran to its end


def test_every_shell_line_of_the_readme_is_run_by_ci_or_a_test():
    """The install and test lines are what ``.ci/run`` runs on a fresh clone; ``hypergym demo`` is run by
    ``test_cli.py::test_the_readme_demo_table_is_what_hypergym_demo_prints``."""
    ci = (ROOT / ".ci" / "run").read_text()
    ci_extras = set(re.search(r'pip install -e "\.\[([\w,]+)\]"', ci).group(1).split(","))
    for block in _blocks("bash"):
        for line in block.strip().splitlines():
            for command in (c.strip() for c in line.split("&&")):
                if command == "hypergym demo":
                    continue
                extras = re.fullmatch(r'pip install -e "\.\[([\w,]+)\]"', command)
                if extras and set(extras.group(1).split(",")) <= ci_extras:
                    continue  # the demo's smaller install: CI installs a superset of its extras
                assert f"{command}\n" in ci or f"{command} " in ci, f"{command!r} is not what .ci/run runs"
