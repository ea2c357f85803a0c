"""The documentation site: ``mkdocs build --strict`` passes, and its generated pages come from the code."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hypergym
from hypergym.cli import build_parser
from hypergym.envs import HyperRLEnv

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parent.parent


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_id_table_is_generated_from_the_registry():
    hooks = _hooks()
    table = hooks.ids_table()
    assert all(f"`{env_id}`" in table for env_id in hypergym.PRESETS)
    fake = {**hypergym.PRESETS, "HyperRL-PPO-Fake": {**hypergym.PRESETS["HyperRL-PPO-CartPole"], "n_steps": 777}}
    sources = {**hypergym.PRESET_SOURCES, "HyperRL-PPO-Fake": "a fake id"}
    row = next(r for r in hooks.ids_table(fake, sources).splitlines() if "HyperRL-PPO-Fake" in r)
    assert "777 x 1" in row and "a fake id" in row
    page = hooks.on_page_markdown(f"before\n{hooks.IDS_MARKER}\nafter")
    assert hooks.IDS_MARKER not in page and "`HyperRL-PPO-HalfCheetah`" in page


def test_the_site_builds_strict_with_the_env_card_and_the_options_from_the_code(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    mdp = (site / "mdp" / "index.html").read_text()
    # the env card is the HyperRLEnv docstring: its first line and every one of its section titles
    doc = HyperRLEnv.__doc__ or ""
    assert doc.splitlines()[0] in mdp
    for title in re.findall(r"^    ## (.+)$", doc, flags=re.M):
        assert title in mdp, title
    ids = (site / "ids" / "index.html").read_text()
    assert all(env_id in ids for env_id in hypergym.PRESETS)
    cli = (site / "cli" / "index.html").read_text()
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert f"$ hypergym {name} --help" in cli
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in cli, (name, flag)
