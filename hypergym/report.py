"""A study's report: ``NAME.md`` (tables and verdicts), ``NAME.csv`` (one row per run) and ``NAME.png``.

Per arm the mean, standard error and median of the study's metric (the paper's for that figure or table)
and of a second one, and for each declared family of comparisons the difference of means with a 95%
percentile-bootstrap interval (seeds resampled within each arm), the exact permutation p-value
Holm-adjusted over the family, and the verdict from it (``better`` / ``worse`` where that p < 0.05), on
both metrics, the paper's first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hypergym.studies import METRICS, Study, arm_dir
from hypergym.verdicts import judge_family

if TYPE_CHECKING:
    from hypergym.plots import Run

__all__ = ["families", "judged_metrics", "report"]


def _metric(runs: Sequence[Run], metric: str) -> list[float]:
    """``metric`` of each run's summary (NaN where it is missing or null)."""
    return [math.nan if r.summary.get(metric) is None else float(r.summary[metric]) for r in runs]


def judged_metrics(study: Study, held: set[str]) -> tuple[str, str]:
    """The two metrics a report judges: the study's own first, then the best evaluation (or the training return).

    The training return comes second in a table's report (its own is the best evaluation) and in a study's
    without evaluations; where that is the study's own, the mean training return over the run (how fast it
    learned) does. ``held``: the metrics every arm's runs recorded; runs made before ``train_return_100`` was
    recorded have the final return over 10 episodes in its place.
    """
    own = study.metric if study.metric in held else "final_return"
    training = "train_return_100" if "train_return_100" in held else "final_return"
    evaluated = own != "best_eval_return" and "best_eval_return" in held  # a study without evaluations has none
    if not evaluated and training == own:  # judged on the training return already: then on how fast it learned
        training = "mean_return" if "mean_return" in held else "final_return"
    return own, "best_eval_return" if evaluated else training


def families(study: Study) -> dict[str, list[tuple[str, str]]]:
    """The study's declared families of comparisons, ``(arm, against)`` labels, each Holm-corrected on its own.

    Each arm against its profile's baseline; each scheduling arm against every rival of its profile, one family
    per arm, as each arm's claim is its own (every rival, not the best one picked after the fact: picking it is a
    comparison too); the plain EPGT arm against PBT and PB2 (Table 2's claim).
    """
    base = {arm.label: study.baseline.format(profile=arm.profile) for arm in study.arms}
    schedulers = [a for a in study.arms if a.label not in study.rivals and not a.agent.startswith("static")]
    methods = [a.label for a in study.arms if a.agent in ("pbt", "pb2")]
    plain_epgt = [a.label for a in study.arms if a.agent == "episodic" and not (a.env_kwargs or a.agent_kwargs)]
    rivals = {f"{a.label} against every rival": [(a.label, r) for r in study.rivals if r.endswith(f"({a.profile})")]
              for a in schedulers}  # fmt: skip
    return {
        "against the baseline": [(a.label, base[a.label]) for a in study.arms if a.label != base[a.label]],
        **{name: pairs for name, pairs in rivals.items() if pairs},
        "against PBT and PB2": [(a, m) for a in plain_epgt for m in methods],
    }


def _family_lines(name: str, pairs: list[tuple[str, str]], by_arm: dict[str, list[Run]], metric: str) -> list[str]:
    """A table of one family of comparisons on ``metric`` (nothing when it is empty)."""
    judged = judge_family([(_metric(by_arm[a], metric), _metric(by_arm[b], metric)) for a, b in pairs])
    lines = [f"| {a} | {b} | {j.difference:+.3g} [{j.low:+.3g}, {j.high:+.3g}] | {j.adjusted:.3f} ({j.p:.3f} alone) "
             f"| {j.verdict} |" for (a, b), j in zip(pairs, judged, strict=True)]  # fmt: skip
    who = f"each arm {name}" if name.startswith("against") else name
    intro = f"{METRICS[metric].split(' (')[0].capitalize()}: {who}; p Holm-adjusted over these {len(pairs)}:"
    return _table(intro, ("arm", "against", "difference [95% CI]", "p (Holm)", "verdict"), lines)


def _table(intro: str, columns: Sequence[str], rows: list[str]) -> list[str]:
    """A paragraph and a Markdown table of ``rows`` (nothing without rows)."""
    if not rows:
        return []
    return ["", intro, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows]


def _schedule_lines(study: Study, by_arm: dict[str, list[Run]]) -> list[str]:
    """What each scheduling arm chose in the second half of its runs (``hypergym.schedules``)."""
    from hypergym.schedules import pooled, schedule_stats

    baselines = {study.baseline.format(profile=arm.profile) for arm in study.arms}
    lines = []
    for arm in study.arms:
        runs = [r for r in by_arm[arm.label] if len(r.actions) > 1 and r.space]
        if (arm.agent.startswith("static") and arm.label not in baselines) or not runs:
            continue  # a static schedule repeats its one action; only the baselines' rewards are of interest
        s = pooled([schedule_stats(r) for r in runs])
        means = "; ".join(f"{k} {v:.3g} (grid {s.grid_means[k]:.3g})" for k, v in s.hparam_means.items())
        lines.append(f"| {arm.label} | {s.steps:,} | {s.repeat_rate:.1%} ({s.uniform_repeat_rate:.1%}) | {means} "
                     f"| {s.nonnegative_rewards:,} of {s.rewards:,} |")  # fmt: skip
    intro = (
        "What the scheduling arms (and the baselines) chose in the second half of their runs (all runs pooled): "
        "how often the action repeats (in brackets, what a uniformly random choice repeats), the mean chosen value "
        "(for multiplier grids the nominal value, before the base's decay) beside the grid's mean, and how many "
        "hyper-rewards were >= 0:"
    )
    columns = ("arm", "hyper-steps", "repeat rate (uniform)", "mean chosen value (grid mean)", "hyper-rewards >= 0")
    return _table(intro, columns, lines)


def report(study: Study, out: Path, command: str, seeds: int | None = None) -> Path:
    """Write ``NAME.md``, ``NAME.csv`` and ``NAME.png`` of ``study``'s finished runs under ``out``.

    Only seeds ``0 .. seeds - 1`` (default: the study's) count, so every arm has the same seeds even where a
    shared folder holds more.
    """
    from hypergym.plots import load_runs, plot_runs, write_summary_csv

    n = seeds or study.seeds
    runs = []
    for arm in study.arms:
        runs += [replace(r, label=arm.label) for r in load_runs([arm_dir(out, study.env_id, arm)]) if (r.seed or 0) < n]
    by_arm = {arm.label: [r for r in runs if r.label == arm.label] for arm in study.arms}
    held = {m for m in METRICS if all(any(map(math.isfinite, _metric(g, m))) for g in by_arm.values() if g)}
    metrics = judged_metrics(study, held)
    paper = (
        "the paper's metric for this figure or table"
        if metrics[0] == study.metric
        else f"in place of the paper's, {METRICS[study.metric]}, which these runs did not record"
    )
    write_summary_csv(runs, out / f"{study.name}.csv", (*METRICS, "env_steps", "env_steps_per_second"), label="arm")
    plot_runs(runs, out / f"{study.name}.png", title=study.title)
    declared = {name: [(a, b) for a, b in pairs if by_arm[a] and by_arm[b]] for name, pairs in families(study).items()}
    family = declared.pop("against the baseline")  # (an arm not run yet is in no family)
    samples = [(_metric(by_arm[a], metrics[0]), _metric(by_arm[b], metrics[0])) for a, b in family]
    judged = dict(zip([a for a, _ in family], judge_family(samples), strict=True))
    baselines = list(dict.fromkeys(f"`{study.baseline.format(profile=arm.profile)}`" for arm in study.arms))
    baseline_text = " or ".join(baselines) + (", the one of each arm's profile," if len(baselines) > 1 else "")
    short = [METRICS[m].split(" (")[0] for m in metrics]
    lines = [
        f"## {study.title}", "", f"Paper: {study.claim}.", "",
        f"Command: `{command}` ({study.env_id}, {len({r.seed for r in runs})} seeds, settings "
        f"{study.env_kwargs or 'of the preset'}). Files: `{study.name}.csv`, `{study.name}.png`.", "",
        f"Metrics: {METRICS[metrics[0]]}, {paper}, judged first; then "
        f"{METRICS[metrics[1]]}. Difference to the baseline {baseline_text} with a 95% bootstrap interval "
        "over seeds (seeds resampled within each arm; the effect's size); p = exact permutation test over the "
        f"seeds, Holm-adjusted over the family of the {len(family)} comparisons of this table (each arm against "
        "its baseline): the verdict is `better` or `worse` where that p < 0.05.", "",
        f"| arm | runs | {short[0]}: mean ± s.e. | median | {short[1]}: mean ± s.e. | median | {short[0]} - baseline "
        "[95% CI] | p (Holm) | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for arm in study.arms:
        label, group = arm.label, by_arm[arm.label]
        cells = [label, str(len(group))]
        for metric in metrics:
            x = np.array(_metric(group, metric), dtype=np.float64)
            x = x[np.isfinite(x)]
            se = x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else math.nan
            # significant figures, not decimals: Catch's returns lie in [-1, 1], BipedalWalker's in the hundreds
            mean = f"{x.mean():.4g} ± {se:.2g}" if len(x) > 1 else f"{x.mean():.4g}" if len(x) else "n/a"
            cells += [mean, f"{np.median(x):.4g}" if len(x) else "n/a"]
        if label in judged:
            j = judged[label]
            shown = f"{j.difference:+.3g} [{j.low:+.3g}, {j.high:+.3g}]" if math.isfinite(j.difference) else "n/a"
            cells += [shown, f"{j.adjusted:.3f} ({j.p:.3f} alone)", j.verdict]
        else:
            cells += ["—", "—", "baseline" if group else "not run yet"]
        lines.append("| " + " | ".join(cells) + " |")
    for name, pairs in declared.items():
        lines += _family_lines(name, pairs, by_arm, metrics[0])
    for name, pairs in {"against the baseline": family, **declared}.items():
        lines += _family_lines(name, pairs, by_arm, metrics[1])
    lines += _schedule_lines(study, by_arm)
    path = out / f"{study.name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path
