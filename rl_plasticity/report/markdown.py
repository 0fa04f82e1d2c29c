"""``write_report``: runs -> PNG figures, ``report.md`` and CSV tables."""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rl_plasticity.errors import ConfigError
from rl_plasticity.metrics.registry import FAMILIES, metric_info
from rl_plasticity.report.figures import (
    colors_for,
    mean_curve,
    plot_profiles,
    plot_returns,
    plot_summary,
)
from rl_plasticity.report.metric_figures import (
    family_plan,
    plot_around_changes,
    plot_family,
    plot_method_activity,
)
from rl_plasticity.report.runs import (
    Run,
    by_attribute,
    drop_duplicates,
    identical_warnings,
    label_rows,
    length_warnings,
    load_runs,
    select_runs,
)
from rl_plasticity.report.statistics import (
    BOOTSTRAP_RESAMPLES,
    END_OF_PHASE_FRACTION,
    MIN_SEEDS_FOR_CI,
    Estimate,
)
from rl_plasticity.report.tables import (
    RECOVERY_WINDOW,
    SUMMARY_METRICS,
    change_table,
    final_scores,
    improvement_table,
    layer_mean,
    metric_change_table,
    phase_table,
    relative_table,
    reset_reference,
    write_csv,
)
from rl_plasticity.report.verdicts import study_section
from rl_plasticity.specs.study import StudySpec

#: Longest failure reason shown in the report (the full one is in the run's status.json).
REASON_CHARS = 300
_CHANGE_COLUMNS = (
    ("recovery_own", "steps to regain own pre-change return"),
    ("recovery_reset", "steps to reach the reset agent's return"),
    ("gap_own", "mean return minus own pre-change level"),
    ("gap_reset", "mean return minus the reset agent's"),
)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _markdown_table(table: dict[str, dict[int, Estimate]]) -> list[str]:
    phases = sorted({p for row in table.values() for p in row})
    names = ["end of run"] if phases == [0] else [f"phase {p}" for p in phases]
    lines = [
        "| agent | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(phases),
    ]
    for agent, row in table.items():
        cells = [str(row[p]) if p in row else "" for p in phases]
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return lines


def _estimate_rows(table: dict[str, dict[int, Estimate]]) -> list[list]:
    return [
        [label, phase, e.iqm, e.low, e.high, e.n]
        for label, row in table.items()
        for phase, e in row.items()
    ]


def _interval_note(runs: list[Run]) -> str:
    counts = Counter((r.env_label, r.label) for r in runs).values()
    fewest = min(counts, default=0)
    if fewest >= MIN_SEEDS_FOR_CI:
        return "[percentile bootstrap 95% CI]"
    return (
        f"[percentile bootstrap interval; with {fewest} seed(s) in the smallest row it is not a "
        f"95% CI: fewer than {MIN_SEEDS_FOR_CI} seeds bound it by the seeds' own range]"
    )


def _summary_panels(runs: list[Run]) -> list[tuple[str, dict]]:
    panels = []
    for title, metric in SUMMARY_METRICS:
        percent = metric_info(metric).percent
        curves = {}
        for label, row_runs in by_attribute(runs, "label").items():
            tables = []
            for run in row_runs:
                mean = layer_mean(run, metric)
                if mean is not None and "timestep" in run.metrics:
                    tables.append({"timestep": run.metrics["timestep"], "v": mean})
            steps, curve = mean_curve(tables, "v")
            if steps.size:
                curves[label] = (steps, 100 * curve if percent else curve)
        panels.append((f"{title}{' (%)' if percent else ''}, hidden layers", curves))
    return panels


def _first_to_last(value: tuple[float, float, int], percent: bool) -> str:
    first, last, n = value
    scale, unit = (100.0, "%") if percent else (1.0, "")
    if n < 2:
        return f"{scale * last:.3g}{unit} (one measurement)"
    return f"{scale * first:.3g}{unit} -> {scale * last:.3g}{unit}"


def _env_section(env: str, runs: list[Run], out_dir: Path, colors: dict[str, str]) -> list[str]:
    stem = _safe_name(env)
    lines = [f"## {env}", ""]
    phases = phase_table(runs)
    reference = reset_reference(runs)
    relative = relative_table(runs, reference) if reference is not None else None
    summary_table = relative if relative is not None else phases
    plot_summary(
        env, runs, out_dir / f"summary_{stem}.png", summary_table, reference,
        _summary_panels(runs), colors,
    )  # fmt: skip
    plot_returns(env, runs, out_dir / f"returns_{stem}.png", colors)
    lines += [f"![summary {env}](summary_{stem}.png)", "", f"![returns {env}](returns_{stem}.png)"]
    one_phase = all(set(row) <= {0} for row in phases.values())
    what = "the run's" if one_phase else "a phase's"
    lines += ["", f"### Return at the end of {'the run' if one_phase else 'each phase'}", ""]
    lines += [
        f"Mean return of the last {END_OF_PHASE_FRACTION:.0%} of {what} episodes per seed; "
        f"interquartile mean over seeds {_interval_note(runs)}.",
        "",
        *_markdown_table(phases),
        "",
    ]
    header = ["agent", "phase", "iqm", "low", "high", "n"]
    write_csv(out_dir / f"phases_{stem}.csv", header, _estimate_rows(phases))
    if relative is not None:
        lines += [
            f"### Return relative to `{reference}`",
            "",
            f"End-of-phase return minus `{reference}`'s (a fresh network at every change) in "
            "the same phase with the same seed, so the same physics; interquartile mean over "
            "seeds. Above 0: the agent is more plastic than a fresh network. A difference, not a "
            "ratio, because returns can be negative or near 0, and returns of different phases "
            "are not comparable with each other.",
            "",
            *_markdown_table(relative),
            "",
        ]
        write_csv(out_dir / f"relative_{stem}.csv", header, _estimate_rows(relative))
    lines += _change_section(runs, reference, out_dir / f"changes_{stem}.csv")
    lines += _metric_table(runs, out_dir / f"metrics_first_last_{stem}.csv")
    figures = []
    if plot_around_changes(env, runs, out_dir / f"around_changes_{stem}.png", colors):
        figures.append(("Around each change", f"around_changes_{stem}.png"))
    if plot_method_activity(env, runs, out_dir / f"methods_{stem}.png", colors):
        figures.append(("Method activity", f"methods_{stem}.png"))
    for family, panels in family_plan({c for r in runs for c in r.metrics}).items():
        name = f"metrics_{family}_{stem}.png"
        plot_family(env, runs, family, panels, out_dir / name, colors)
        figures.append((f"Plasticity metrics: {FAMILIES[family]}", name))
    for title, name in figures:
        lines += [f"### {title}", "", f"![{title} {env}]({name})", ""]
    return lines


def _change_section(runs: list[Run], reference: str | None, csv_path: Path) -> list[str]:
    table = change_table(runs, reference)
    if not table:
        return []
    columns = [
        (k, t)
        for k, t in _CHANGE_COLUMNS
        if any(k in c for r in table.values() for c in r.values())
    ]
    lines = [
        "### Plasticity after each change",
        "",
        f"Per change and seed: steps until the moving average of {RECOVERY_WINDOW} episode returns "
        "regains a level (k/n: seeds that did within the phase; the IQM is over those), and the "
        "mean return over the new phase minus a level (the area under the curve relative to it, "
        "per step). Own level: the run's end-of-phase return before the change; the reset "
        "agent's: its end-of-phase return in the new phase, same seed, or its curve for the "
        "area. IQM over seeds.",
        "",
        "| agent | change | " + " | ".join(t for _, t in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    rows = []
    for label, changes in table.items():
        for k, stats in changes.items():
            cells = []
            for key, _ in columns:
                est = stats.get(key)
                if est is None:
                    cells.append("")
                    continue
                text = f"{est.iqm:,.0f}" if not math.isnan(est.iqm) else "not reached"
                if key.startswith("gap"):
                    text = f"{est.iqm:.1f}"
                if key.startswith("recovery"):
                    text += f" ({stats['recovered' + key[len('recovery') :]]})"
                cells.append(text)
                rows.append([label, k, key, est.iqm, est.low, est.high, est.n])
            lines.append(f"| {label} | {k} | " + " | ".join(cells) + " |")
    write_csv(csv_path, ["agent", "change", "statistic", "iqm", "low", "high", "n"], rows)
    return [*lines, ""]


def _metric_table(runs: list[Run], csv_path: Path) -> list[str]:
    changes = metric_change_table(runs)
    if not changes:
        return []
    titles = [t for t, _ in SUMMARY_METRICS if any(t in row for row in changes.values())]
    percent = {t: metric_info(m).percent for t, m in SUMMARY_METRICS}
    lines = [
        "### Plasticity metrics, first and last measurement",
        "",
        "Every hidden layer of every network averaged (unweighted), then the seeds.",
        "",
        "| agent | "
        + " | ".join(t.replace("|", "\\|") + (" (%)" if percent[t] else "") for t in titles)
        + " |",
        "|---|" + "---|" * len(titles),
    ]
    rows = []
    for label, row in changes.items():
        cells = [_first_to_last(row[t], percent[t]) if t in row else "" for t in titles]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        rows += [[label, t, *row[t]] for t in titles if t in row]
    write_csv(csv_path, ["agent", "metric", "first", "last", "measurements"], rows)
    return [*lines, ""]


def _improvement_section(runs: list[Run], out_dir: Path, colors: dict[str, str]) -> list[str]:
    envs = by_attribute(runs, "env_label")
    fewest = min((len(r) for r in by_attribute(runs, "label").values()), default=0)
    if len(envs) < 2 or fewest < MIN_SEEDS_FOR_CI:
        return [
            "Performance profiles and the probability of improvement are not shown: across "
            f"{len(envs)} environment(s) with as few as {fewest} seed(s) per agent they are "
            f"degenerate (they need 2 or more environments and {MIN_SEEDS_FOR_CI} or more seeds "
            "per agent; with one environment the last phase alone would decide them).",
            "",
        ]
    references = {
        env: ref
        for env, env_runs in by_attribute(runs, "env_label").items()
        if (ref := reset_reference(env_runs)) is not None
    }
    table = improvement_table(runs, references) if references else {}
    lines = []
    scores = final_scores(runs)
    if len(scores) > 1:
        plot_profiles(scores, out_dir / "profiles.png", colors)
        lines += [
            "## Performance profiles",
            "",
            "Per agent, the fraction of its runs (over every environment and seed, each "
            "environment weighted equally) whose return at the end of the last complete phase, "
            "min-max normalized per environment over all runs, exceeds each threshold (Agarwal "
            "et al. 2021). A curve above another: better runs throughout.",
            "",
            "![performance profiles](profiles.png)",
            "",
        ]
    if not table:
        return lines
    lines += [
        "## Probability of improvement over the reset agent",
        "",
        "P(agent > reset agent): the chance that a run of the agent ends its last complete phase "
        "with a higher return than a run of the reset agent on the same environment (ties count "
        "half), averaged over environments (Agarwal et al. 2021); interval: stratified bootstrap "
        "(seeds resampled within each environment). 0.5: no difference. Interval: "
        + _interval_note(runs).strip("[]")
        + ".",
        "",
        "| agent | P(agent > reset) | interval | environments |",
        "|---|---|---|---|",
    ]
    for label, (p, low, high, n) in table.items():
        lines.append(f"| {label} | {p:.2f} | [{low:.2f}, {high:.2f}] | {n} |")
    rows = [[label, *values] for label, values in table.items()]
    write_csv(out_dir / "improvement.csv", ["agent", "p", "low", "high", "environments"], rows)
    return [*lines, ""]


def _lost_workers_section(runs: list[Run], run_root: Path) -> list[str]:
    """Runs of a Ray sweep that lost a worker (node lost, worker killed) and were resumed."""
    hit = [r for r in runs if r.lost]
    if not hit:
        return []
    lines = [
        "## Runs that lost a worker",
        "",
        f"Workers lost: {sum(len(r.lost) for r in hit)}, in {len(hit)} of {len(runs)} runs (a "
        "node lost or a worker killed); each such run was resumed from its last checkpoint in "
        "storage by another worker.",
        "",
        "| run | workers started | lost | resumed from step |",
        "|---|---|---|---|",
    ]
    for run in hit:
        where = run.path.relative_to(run_root) if run.path != run_root else run.path.name
        steps = ", ".join(f"{int(lost.get('step', 0)):,}" for lost in run.lost)
        lines.append(f"| `{where}` | {run.attempts} | {len(run.lost)} | {steps} |")
    return [*lines, ""]


def write_report(
    run_root: Path,
    out_dir: Path | None = None,
    *,
    groups: Iterable[str] | None = None,
    envs: Iterable[str] | None = None,
    agents: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
    unfinished: bool = False,
    study: StudySpec | None = None,
) -> Path:
    """Write PNG figures, CSV tables and ``report.md`` for the runs below ``run_root``.

    Runs are pooled over seeds only within a row (same group, env spec content and agent spec
    content, see :mod:`.runs`); duplicates and unequal lengths are listed in the report and on
    stderr.

    :param run_root: folder holding run directories (searched recursively)
    :param out_dir: where to write; default ``<run_root>/report``
    :param groups: only these groups (None: all)
    :param envs: only these env names
    :param agents: only these agent names
    :param seeds: only these seeds
    :param unfinished: also use interrupted and running runs (up to the step each reached; the
        report lists them and says so); by default figures and tables use finished runs only
    :param study: a study spec: its pre-registered test's section and verdict lines are added
        (the verdicts also to ``verdicts.txt``, one per line), from the runs of its envs only
        (a folder may also hold other runs, e.g. a pilot's stationary control)
    :return: path of ``report.md``
    :raises ConfigError: a folder without runs, or a filter value that matches no run
    """
    run_root = Path(run_root)
    out_dir = Path(out_dir) if out_dir is not None else run_root / "report"
    found = load_runs(run_root)
    if not found:
        raise ConfigError(
            "folder of runs",
            str(run_root),
            "a folder holding runs (run directories with a config.json, as "
            "rlp train and rlp sweep write them); it holds none",
        )
    runs = select_runs(found, groups, envs, agents, seeds)
    out_dir.mkdir(parents=True, exist_ok=True)
    label_rows(runs)
    runs, warnings = drop_duplicates(runs)
    statuses = ("done", "interrupted", "running") if unfinished else ("done",)
    used = [r for r in runs if r.status in statuses]
    warnings += length_warnings(used) + identical_warnings(used)
    for warning in warnings:
        print(f"rlp report: warning: {warning}", file=sys.stderr)
    colors = colors_for(r.label for r in runs)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(r.status for r in runs).items()))
    lines = [
        f"# Report: {run_root}",
        "",
        f"{len(runs)} runs ({counts or 'none'}). "
        + (
            "Figures and tables use every run that is not failed, unfinished ones up to the "
            "step each reached (`--unfinished`)."
            if unfinished
            else "Figures and tables use finished runs only."
        ),
        "",
    ]
    if warnings:
        lines += ["**Warnings**", "", *[f"- {w}" for w in warnings], ""]
    verdicts_file = out_dir / "verdicts.txt"
    verdicts_file.unlink(missing_ok=True)
    if study is not None:
        section, verdicts = study_section(
            [r for r in used if r.env in study.envs],
            study.test,
            out_dir,
            colors_for(r.agent for r in runs),
        )
        lines += section
        verdicts_file.write_text("".join(f"{v}\n" for v in verdicts))
    for env, env_runs in by_attribute(used, "env_label").items():
        lines += _env_section(env, env_runs, out_dir, colors)
    lines += _improvement_section(used, out_dir, colors)
    not_done = [r for r in runs if r.status != "done"]
    if not_done:
        lines += ["## Runs not finished", "", "| run | status | reason |", "|---|---|---|"]
        for run in not_done:
            where = run.path.relative_to(run_root) if run.path != run_root else run.path.name
            reason = " ".join((run.reason or "").split()).replace("|", "\\|")
            if len(reason) > REASON_CHARS:  # a traceback's message can hold a whole tensor
                reason = reason[: REASON_CHARS - 3] + "..."
            lines.append(f"| `{where}` | {run.status} | {reason} |")
        lines.append("")
    lines += _lost_workers_section(runs, run_root)
    lines += [
        "## Method",
        "",
        "Rows: runs are pooled over seeds only when they share the group, the env spec's content "
        "and the agent spec's content (from each run's config.json); `#abc123` tells apart specs "
        "of one name with different contents. Curves: each seed's episode returns are averaged "
        "in equal step bins (interpolated over empty bins); the line is the mean over seeds; the "
        f"band a percentile bootstrap 95% interval over seeds ({BOOTSTRAP_RESAMPLES} resamples, "
        f"`scipy.stats.bootstrap`) with {MIN_SEEDS_FOR_CI} or more seeds, the range over seeds "
        "with fewer (a bootstrap over 2-4 seeds is not a confidence interval). Grey vertical "
        "lines: physics changes at the step each took effect (the end of the last episode of "
        "the old phase; the schedule's step when changes apply immediately), median over runs. "
        "Interquartile mean: `scipy.stats.trim_mean(x, 0.25)` (as rliable's `aggregate_iqm`); "
        "with fewer than 4 seeds it trims nothing and is the mean. Per-row tables are also "
        "written as CSV next to this file.",
        "",
    ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
