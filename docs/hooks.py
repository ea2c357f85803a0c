"""mkdocs hooks: the pages that list registered ids and the command line are generated from the code.

``mkdocs.yml`` names this file under ``hooks``. A page holding a marker gets the generated Markdown in its
place when the site is built, so a new id or a new option appears on the site by itself.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Mapping
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The package as installed (``hypergym.envs`` is ``envs/``, ``hypergym.agents`` is ``agents/``: see
#: pyproject's package-dir), mirrored with links, for mkdocstrings to read the docstrings from.
LAYOUT = ROOT / ".docs_build"


def mirror_installed_layout() -> None:
    """Link ``LAYOUT/hypergym`` to the sources in the layout the wheel installs."""
    shutil.rmtree(LAYOUT, ignore_errors=True)
    package = LAYOUT / "hypergym"
    package.mkdir(parents=True)
    for entry in (ROOT / "hypergym").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for sub in ("envs", "agents"):
        (package / sub).symlink_to(ROOT / sub)


mirror_installed_layout()  # when mkdocs loads this hook, before mkdocstrings reads anything

#: ``<!-- hypergym:NAME -->`` markers and what replaces them.
IDS_MARKER = "<!-- hypergym:ids -->"
CLI_MARKER = "<!-- hypergym:cli -->"


def _number(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"


def ids_table(presets: Mapping[str, Mapping[str, Any]] | None = None, sources: Mapping[str, str] | None = None) -> str:
    """A Markdown table of every registered id: rollout, update phase, budget, grid and source.

    Args:
        presets: Id -> preset kwargs (default: ``hypergym.PRESETS``, what ``gym.make`` uses).
        sources: Id -> where the preset comes from (default: ``hypergym.PRESET_SOURCES``).
    """
    if presets is None or sources is None:
        import hypergym

        presets, sources = hypergym.PRESETS, hypergym.PRESET_SOURCES
    rows = ["| id | T x envs | U | budget | hyperparameter grid | source |", "|---|---|---|---|---|---|"]
    for env_id in sorted(presets):
        p = presets[env_id]
        u = f"{p['n_epochs']}·⌈N/b⌉" if p["algo"] == "PPO" else str(p.get("updates_per_phase", 1))
        grid = "; ".join(
            f"{name} {{{', '.join(_number(v) for v in values)}}}" for name, values in p.get("hyperparams", {}).items()
        )
        budget = _number(p["total_env_steps"])
        rows.append(
            f"| `{env_id}` | {p['n_steps']} x {p['n_envs']} | {u} | {budget} | {grid} | {sources.get(env_id, '')} |"
        )
    return "\n".join(rows)


def cli_help() -> str:
    """``hypergym --help`` and every subcommand's ``--help``, as the parser prints them."""
    from hypergym.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: a fixed width for the page
    parser = build_parser()
    out = [f"```text\n$ hypergym --help\n{parser.format_help()}```"]
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():  # type: ignore[union-attr]
        text = io.StringIO()
        with redirect_stdout(text):
            sub.print_help()
        out.append(f"### hypergym {name}\n\n```text\n$ hypergym {name} --help\n{text.getvalue()}```")
    return "\n\n".join(out)


GENERATORS: dict[str, Callable[[], str]] = {IDS_MARKER: ids_table, CLI_MARKER: cli_help}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """The mkdocs hook: replace each marker in a page by what its generator makes of the code."""
    for marker, generate in GENERATORS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
