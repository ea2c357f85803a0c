"""Re-judge every study of docs/results.md from its kept CSV with the exact permutation test and Holm.

``python docs/results/rejudge.py`` prints the Markdown of the re-judged verdicts in ``docs/results.md``;
``tests/test_docs.py`` checks that the page holds what it prints. The families are the report's
(:func:`hypergym.reproduce.families`); two metrics are judged, the study's own first (the paper's for that
figure or table, :attr:`hypergym.studies.Study.metric`; where a CSV made before 2026-12-05 lacks Fig. 2's
training return over the last 100 episodes, the final training return over the last 10 stands in), then
the best evaluation or the final training return. "before" is the earlier verdict: the 95% bootstrap
interval excluding 0, no correction.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from hypergym.report import judged_metrics
from hypergym.reproduce import STUDIES, families
from hypergym.verdicts import bootstrap_difference, judge_family, verdict

HERE = Path(__file__).resolve().parent
METRICS = {
    "train_return_100": "training return (last 100 episodes)",
    "best_eval_return": "best evaluation",
    "final_return": "final training return",
    "mean_G": "mean return over the run",
    "mean_return": "mean training return over the run",
}


def _values(name: str) -> dict[str, dict[str, list[float]]]:
    """Arm -> metric -> one value per seed, from ``NAME.csv``."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in csv.DictReader((HERE / f"{name}.csv").open()):
        for metric in METRICS:
            cell = row.get(metric, "")
            out[row["arm"]][metric].append(float(cell) if cell not in ("", "None") else np.nan)
    return out


def section() -> str:
    """The Markdown section: one table per study, every comparison on both metrics."""
    lines = []
    for name in STUDIES:
        if not (HERE / f"{name}.csv").is_file():
            continue
        values = _values(name)
        held = {m for m in METRICS if all(np.isfinite(v[m]).any() for v in values.values())}  # by every arm
        for metric in judged_metrics(STUDIES[name], held):
            label = METRICS[metric] + (" (the paper's metric)" if metric == STUDIES[name].metric else "")
            for family, declared in families(STUDIES[name]).items():
                pairs = [(a, b) for a, b in declared if a in values and b in values]
                if not pairs:
                    continue
                judged = judge_family([(values[a][metric], values[b][metric]) for a, b in pairs])
                lines += ["", f"**{name}**, {label}, {family} (a family of {len(pairs)}):", "",
                          "| arm | against | difference [95% CI] | p alone | p Holm | verdict | before |",
                          "|---|---|---|---|---|---|---|"]  # fmt: skip
                for (a, b), j in zip(pairs, judged, strict=True):
                    _, low, high = bootstrap_difference(values[a][metric], values[b][metric])
                    before = verdict(low, high)
                    now = j.verdict if j.verdict == before else f"**{j.verdict}**"
                    lines.append(f"| {a} | {b} | {j.difference:+.3g} [{j.low:+.3g}, {j.high:+.3g}] | {j.p:.3f} "
                                 f"| {j.adjusted:.3f} | {now} | {before} |")  # fmt: skip
    return "\n".join(lines[1:]) + "\n"


if __name__ == "__main__":
    print(section(), end="")
