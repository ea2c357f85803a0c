"""``hypergym reproduce NAME``: one command per study of the paper, ending in a results section.

A study (:mod:`hypergym.studies`) is a set of arms (an agent under an EPGT profile, with optional env
overrides) on one registered id, each run on the same seeds by :func:`hypergym.study.plan`'s jobs (so
finished runs are reused and unfinished ones resume from their checkpoints); :func:`hypergym.report.report`
then writes ``NAME.md``, ``NAME.csv`` and ``NAME.png`` beside the runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hypergym.report import families, report
from hypergym.studies import STUDIES, Arm, Study, arm_dir, group_dir, study
from hypergym.verdicts import bootstrap_difference

if TYPE_CHECKING:
    from hypergym.jobs import RunSpec

__all__ = ["STUDIES", "Arm", "Study", "arm_dir", "bootstrap_difference", "families", "report", "reproduce"]
__all__ += ["study_specs"]


def reproduce(name: str, out: Path, workers: int, seeds: int | None = None, command: str = "") -> Path:
    """Run (or resume) every arm of study ``name`` under ``out``, then write its report; returns ``NAME.md``.

    Arms without overrides run in ``out/<id>/<profile>/<agent>``, so studies of one id given the same ``out``
    share them (``ingredients`` reuses ``fig2a``'s EPGT and static runs); an arm with overrides runs in a
    folder named after its label. A finished run is reused only if it was made with the same settings.
    """
    from hypergym.jobs import run_many

    chosen = study(name)
    n = seeds or chosen.seeds
    from hypergym.runlock import folder_lock

    with folder_lock(out):  # a second reproduce on this --out refuses at once
        run_many(study_specs(name, out, n), workers)  # every arm's runs and populations share the workers
    return report(chosen, out, command or f"hypergym reproduce {name} --out {out}", n)


def study_specs(name: str | Study, out: Path, seeds: int | None = None) -> list[RunSpec]:
    """The jobs of study ``name`` (or of a :class:`Study` given) under ``out`` (what :func:`reproduce` runs).

    Every arm is checked first.

    For running a long study's jobs in an order of one's own (e.g. whole populations before a session
    ends): the jobs are the same, so ``hypergym reproduce NAME`` reuses what they finished.
    """
    from hypergym.study import plan

    chosen = name if isinstance(name, Study) else study(name)
    n = seeds or chosen.seeds
    groups: dict[Path, list[Arm]] = {}
    for arm in chosen.arms:  # arms that share env settings share a folder
        groups.setdefault(group_dir(out, chosen.env_id, arm), []).append(arm)
    specs = []
    for folder, arms in groups.items():
        env_kwargs = {**chosen.env_kwargs, **arms[0].env_kwargs, "profile": arms[0].profile}
        specs += plan(chosen.env_id, [a.agent for a in arms], n, folder, env_kwargs, arms[0].agent_kwargs,
                      single_runs=arms[0].single_runs)  # fmt: skip
    return specs
