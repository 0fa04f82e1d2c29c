"""The ``rlp`` command line: train, sweep, report, envs, agents.

Exit codes: 0 success, 1 a run (or some runs of a sweep) failed, 2 bad input (a spec, a flag, an
existing run), 130 / 143 interrupted by SIGINT / SIGTERM (after a checkpoint; the one line printed
says how to resume), with a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rl_plasticity.errors import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _error(message: str) -> int:
    print(f"rlp: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _note(line: str) -> None:
    print(f"rlp: {line}", file=sys.stderr, flush=True)


def _exit_code(signum: int | None) -> int:
    """128 + the signal's number, as a shell reports a process ended by it."""
    return 128 + (signum or signal.SIGINT)


def _again(argv: Sequence[str], flag: str) -> str:
    """The command line that continues this one: the same arguments with ``flag``."""
    kept = [a for a in argv if a not in ("--resume", "--restart")]
    return "rlp " + shlex.join([*kept, flag])


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``rlp: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"rlp: error: {self.prog.removeprefix('rlp ')}: {message}\n")


def _count(key: str, minimum: int = 1) -> Callable[[str], int]:
    from rl_plasticity.overrides import parse_count

    def parse(text: str) -> int:
        try:
            return parse_count(text, key, minimum)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(e.allowed) from None

    return parse


def _population(text: str) -> int | str:
    return "auto" if text == "auto" else _count("population")(text)


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"a positive number of minutes, not {text!r}")
    return value


def _evaluation(args: argparse.Namespace) -> Any:
    from rl_plasticity.evaluation import EvalSettings, parse_phases

    if args.eval_every is None:
        return None
    return EvalSettings(args.eval_every, args.eval_episodes, parse_phases(args.eval_phases))


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments ``rlp train`` gives ``train`` and ``train_seeds`` alike."""
    from rl_plasticity.overrides import combinations, parse_sets

    (assignment,) = combinations(parse_sets(args.set or []))
    return {
        "root": args.root,
        "group": args.group,
        "resume": args.resume,
        "restart": args.restart,
        "device": args.device,
        "overrides": assignment,
        "evaluation": _evaluation(args),
        "checkpoint_minutes": args.checkpoint_minutes,
        "echo": _note,
    }


def _cmd_train(args: argparse.Namespace) -> int:
    from rl_plasticity.experiment.build import RunSetupError
    from rl_plasticity.experiment.resolve import RunExistsError
    from rl_plasticity.experiment.run import train

    if args.seeds is not None:
        return _train_seeds(args)
    try:
        result = train(
            args.env,
            args.agent,
            args.seed,
            args.steps,
            progress_bar=not args.no_progress,
            **_run_options(args),
        )
    except (ConfigError, RunExistsError, RunSetupError) as e:
        return _error(str(e))
    if result.status == "interrupted":
        name = signal.Signals(result.signum or signal.SIGINT).name
        if result.timestep is None:
            _note(
                f"interrupted ({name}) before the first checkpoint; start again with: "
                f"{_again(args.argv, '--restart')}"
            )
        else:
            _note(
                f"interrupted ({name}) at step {result.timestep:,}, checkpointed; resume with: "
                f"{_again(args.argv, '--resume')}"
            )
        return _exit_code(result.signum)
    if result.status == "failed":
        print(f"rlp: run failed: {result.reason}", file=sys.stderr)
        print(result.path)
        return EXIT_FAILED
    if result.status == "skipped":
        print(f"already done: {result.path}", file=sys.stderr)
    print(result.path)
    return EXIT_OK


def _grid(args: argparse.Namespace) -> tuple[list[str], list[str], list[int], int, str, Any]:
    """The sweep's envs, agents, seeds, steps, group and evaluation: from ``--study`` or the
    options.

    :raises ConfigError: for an option missing, or given beside ``--study``
    """
    from rl_plasticity.specs.study import load_study_spec
    from rl_plasticity.sweep import parse_seeds

    grid = ("envs", "agents", "seeds", "steps", "group")
    if args.study is not None:
        for key in grid:
            if getattr(args, key) is not None:
                raise ConfigError(f"--{key}", getattr(args, key), "not with --study (it sets it)")
        study = load_study_spec(args.study)
        evaluation = _evaluation(args)
        if study.evaluation is not None:
            if evaluation is not None:
                raise ConfigError("--eval-every", args.eval_every, "not with --study (it sets it)")
            from rl_plasticity.evaluation import EvalSettings

            # the study's table has EvalSettings' keys (checked when the spec was loaded)
            evaluation = EvalSettings(**study.evaluation)
        return study.envs, study.agents, study.seeds, study.steps, study.group, evaluation
    for key in ("envs", "agents", "steps"):
        if getattr(args, key) is None:
            raise ConfigError(f"--{key}", None, "required (or give --study)")
    return (
        [e for e in args.envs.split(",") if e],
        [a for a in args.agents.split(",") if a],
        parse_seeds(args.seeds if args.seeds is not None else "0"),
        args.steps,
        args.group if args.group is not None else "sweep",
        _evaluation(args),
    )


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rl_plasticity.overrides import parse_sets
    from rl_plasticity.sweep import SweepProgress, load_runtime_env, sweep

    try:
        envs, agents, seeds, steps, group, evaluation = _grid(args)
        overrides = parse_sets(args.set or [], grid=True)
        runtime_env = load_runtime_env(args.runtime_env) if args.runtime_env else None
        with SweepProgress(enabled=not args.no_progress) as progress:
            result = sweep(
                envs,
                agents,
                seeds,
                steps,
                root=args.root,
                group=group,
                jobs=args.jobs,
                backend=args.backend,
                address=args.address,
                overrides=overrides,
                evaluation=evaluation,
                checkpoint_minutes=args.checkpoint_minutes,
                echo=progress.echo,
                progress=progress,
                storage=args.storage,
                max_retries=args.max_retries,
                runtime_env=runtime_env,
                population=args.population,
            )
    except ConfigError as e:
        return _error(str(e))
    print(result.summary())
    if result.signum is not None:
        name = signal.Signals(result.signum).name
        _note(
            f"sweep interrupted ({name}), {result.interrupted} runs stopped; resume with: "
            f"rlp {shlex.join(args.argv)}"
        )
        return _exit_code(result.signum)
    return EXIT_FAILED if result.failed else EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from rl_plasticity.report import write_report
    from rl_plasticity.specs.study import load_study_spec
    from rl_plasticity.sweep import Storage, parse_seeds

    out = Path(args.out) if args.out else None
    if "://" in args.dir:  # run storage behind a URI: read through fsspec
        try:
            storage = Storage(args.dir)
        except ConfigError as e:
            return _error(str(e))
        if storage.local_path is not None:
            args.dir = str(storage.local_path)
        else:
            out = out or Path("report")
            copied = storage.download_runs(out / "runs")
            _note(f"{copied} files of the runs in {args.dir} copied to {out / 'runs'}")
            args.dir = str(out / "runs")
    if not Path(args.dir).is_dir():
        return _error(f"{args.dir}: no such directory")

    def names(text: str | None) -> list[str] | None:
        return [n for n in text.split(",") if n] if text is not None else None

    try:
        report = write_report(
            Path(args.dir),
            out,
            groups=names(args.groups),
            envs=names(args.envs),
            agents=names(args.agents),
            seeds=parse_seeds(args.seeds) if args.seeds is not None else None,
            unfinished=args.unfinished,
            study=load_study_spec(args.study) if args.study else None,
        )
    except ConfigError as e:
        return _error(str(e))
    print(report)
    verdicts = report.parent / "verdicts.txt"
    if args.study and verdicts.is_file():
        print(verdicts.read_text(), end="")
    return EXIT_OK


def _cmd_envs(args: argparse.Namespace) -> int:
    from rl_plasticity.specs import available_specs, load_env_spec

    if args.show:
        from rl_plasticity.nonstationary.config import describe

        try:
            spec = load_env_spec(args.show)
        except ConfigError as e:
            return _error(str(e))
        print(f"{spec.name}: {spec.description}")
        print(f"  file:     {spec.path}")
        print(f"  base env: {spec.env_id}" + (f"  (gym id {spec.gym_id})" if spec.gym_id else ""))
        if spec.env_kwargs:
            print(f"  kwargs:   {spec.env_kwargs}")
        if spec.nonstationary is None:
            print("  stationary")
        else:
            for line in describe(spec.nonstationary):
                print(f"  {line}")
        return EXIT_OK
    return _list_specs(available_specs("envs"), lambda p: load_env_spec(p).description)


def _cmd_agents(args: argparse.Namespace) -> int:
    from rl_plasticity.specs import available_specs, load_agent_spec

    return _list_specs(available_specs("agents"), lambda p: load_agent_spec(p).description)


def _list_specs(specs: dict[str, Path], describe_one: Callable[[Path], str]) -> int:
    width = max((len(n) for n in specs), default=0)
    for name, path in specs.items():
        try:
            line = describe_one(path)
        except ConfigError as e:
            line = f"INVALID: {e}"
        print(f"{name:<{width}}  {line}")
    return EXIT_OK


def _add_run_options(p: argparse.ArgumentParser, grid: bool) -> None:
    """Options that ``train`` and ``sweep`` share: --set, checkpoints, evaluation, progress."""
    values = "VALUE[,VALUE...]" if grid else "VALUE"
    p.add_argument(
        "--set",
        action="append",
        metavar=f"KEY={values}",
        help="override a dotted agent spec key with a TOML value, e.g. "
        "hyperparameters.learning_rate=3e-4"
        + ("; several values: one agent per combination" if grid else "")
        + " (repeatable)",
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=_minutes,
        metavar="MINUTES",
        help="also checkpoint every this many minutes (besides the spec's checkpoint_every)",
    )
    p.add_argument(
        "--eval-every",
        type=_count("eval-every"),
        metavar="STEPS",
        help="evaluate the deterministic policy every this many steps into eval.csv (default: "
        "no evaluation)",
    )
    p.add_argument(
        "--eval-episodes",
        type=_count("eval-episodes"),
        default=5,
        metavar="N",
        help="episodes per physics",
    )
    p.add_argument(
        "--eval-phases",
        default="all",
        metavar="N",
        help="earlier phases to evaluate besides the current one (all, or the N most recent)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress display")


def _train_seeds(args: argparse.Namespace) -> int:
    from rl_plasticity.experiment.build import RunSetupError
    from rl_plasticity.experiment.population import train_seeds
    from rl_plasticity.experiment.resolve import RunExistsError
    from rl_plasticity.sweep import parse_seeds

    try:
        results = train_seeds(
            args.env, args.agent, parse_seeds(args.seeds), args.steps, **_run_options(args)
        )
    except (ConfigError, RunExistsError, RunSetupError) as e:
        return _error(str(e))
    for result in results:
        if result.status == "failed":
            print(f"rlp: run failed: {result.path}: {result.reason}", file=sys.stderr)
        elif result.status == "skipped":
            print(f"already done: {result.path}", file=sys.stderr)
        print(result.path)
    stopped = [r for r in results if r.status == "interrupted"]
    if stopped:
        name = signal.Signals(stopped[0].signum or signal.SIGINT).name
        _note(f"interrupted ({name}); resume with: {_again(args.argv, '--resume')}")
        return _exit_code(stopped[0].signum)
    return EXIT_FAILED if any(r.status == "failed" for r in results) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``rlp`` argument parser."""
    from importlib import metadata

    defaults = _Help
    parser = _Parser(prog="rlp", description="Study and fix loss of plasticity in deep RL.")
    parser.add_argument(
        "--version", action="version", version=f"rlp {metadata.version('rl_plasticity')}"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one agent on one environment", formatter_class=defaults)
    p.add_argument("--env", required=True, help="env spec name or .toml path")
    p.add_argument("--agent", required=True, help="agent spec name or .toml path")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument(
        "--seed", type=int, default=0, help="seed of the algorithm, networks and envs"
    )
    seed.add_argument(
        "--seeds",
        default=None,
        help="several seeds (e.g. 0-7) trained in this one process as a population: one run "
        "directory each, their policy calls (and updates, where nothing hooks them) batched "
        "(FastPPO agents; others train one after another)",
    )
    p.add_argument(
        "--steps",
        type=_count("steps"),
        required=True,
        help="total environment steps (1000000, 1_000_000 or 1e6; rounded up to whole rollouts)",
    )
    p.add_argument("--root", type=Path, default=Path("runs"), help="folder of run groups")
    p.add_argument("--out", dest="root", type=Path, help="alias of --root")
    p.add_argument("--group", default="default", help="sub-folder for this batch of runs")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), help="overrides the agent spec")
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run from its last checkpoint (a run not started yet starts; one "
        "without a checkpoint is refused)",
    )
    again.add_argument(
        "--restart", action="store_true", help="train the run again from step 0, replacing it"
    )
    _add_run_options(p, grid=False)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "sweep", help="train a grid of envs x agents x seeds", formatter_class=defaults
    )
    p.add_argument(
        "--study",
        default=None,
        help="a study spec (name or .toml) giving envs, agents, seeds, steps and group; "
        "options given beside it are refused",
    )
    p.add_argument("--envs", default=None, help="comma-separated env specs (required)")
    p.add_argument("--agents", default=None, help="comma-separated agent specs (required)")
    p.add_argument("--seeds", default=None, help="e.g. 0-4 or 0,2,5 (default: 0)")
    p.add_argument(
        "--steps", type=_count("steps"), default=None, help="environment steps per run (required)"
    )
    p.add_argument("--root", type=Path, default=Path("runs"), help="folder of run groups")
    p.add_argument(
        "--group", default=None, help="this sweep's folder under --root (default: sweep)"
    )
    p.add_argument(
        "--jobs", type=_count("jobs"), default=None, help="parallel runs (default: every core)"
    )
    p.add_argument("--backend", choices=("local", "ray"), default="local", help="where runs run")
    p.add_argument("--address", default=None, help="Ray cluster address (with --backend ray)")
    p.add_argument(
        "--storage",
        default=None,
        metavar="PATH_OR_URI",
        help="with --backend ray: where runs are kept, a path every node shares or a URI "
        "(file://, s3://, gs://, ...); runs train on their worker's disk and are copied there "
        "at every checkpoint (default: --root, shared)",
    )
    p.add_argument(
        "--population",
        type=_population,
        default="auto",
        metavar="N|auto",
        help="local backend: train up to N seeds of one env and agent in one process, as a "
        "population (FastPPO agents: their policy calls and updates batched, methods and "
        "metrics on member stacks); 1: a process per run; default auto: FastPPO agents' seeds "
        "in as few populations as keep --jobs processes busy, other agents a process per run",
    )
    p.add_argument(
        "--max-retries",
        type=_count("max-retries", minimum=0),
        default=None,
        metavar="N",
        help="with --backend ray: tries of a run after the first when its worker or node is "
        "lost, each from its last stored checkpoint (default: 3)",
    )
    p.add_argument(
        "--runtime-env",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --backend ray: a JSON or YAML file with Ray's runtime_env for the workers "
        "(pip, env_vars, working_dir, container, ...)",
    )
    _add_run_options(p, grid=True)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("report", help="figures and a Markdown report of the runs under DIR")
    p.add_argument(
        "dir", help="a folder of runs (e.g. runs/sweep), or a sweep's --storage URI (file://...)"
    )
    p.add_argument(
        "--out", default=None, help="where to write (default: DIR/report; for a URI: ./report)"
    )
    p.add_argument("--groups", default=None, help="only these groups, comma-separated")
    p.add_argument("--envs", default=None, help="only these env specs, comma-separated")
    p.add_argument("--agents", default=None, help="only these agent specs, comma-separated")
    p.add_argument("--seeds", default=None, help="only these seeds, e.g. 0-4 or 0,2,5")
    p.add_argument(
        "--unfinished",
        action="store_true",
        help="also report interrupted and running runs, up to the step each reached",
    )
    p.add_argument(
        "--study",
        default=None,
        help="a study spec (name or .toml): apply its pre-registered test and print the verdicts",
    )
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("envs", help="list environment specs")
    p.add_argument("--show", metavar="NAME", help="show one spec and its schedule")
    p.set_defaults(func=_cmd_envs)

    p = sub.add_parser("agents", help="list agent specs")
    p.set_defaults(func=_cmd_agents)
    return parser


def _format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """A warning as one line, ``rlp: warning: ...``, without Python's file and line: under the
    command line they point at ``rlp``'s own ``sys.exit(main())`` rather than at anything the
    user wrote."""
    kind = "" if category is UserWarning else f"{category.__name__}: "
    return f"rlp: warning: {kind}{message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rlp`` with ``argv`` (default: the process's arguments); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad argument (one line, exit 2)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    args.argv = argv
    python_format, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        code = args.func(args)
        # A reader that went away is found here, not at exit where Python prints a traceback.
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:  # before training started, or a second Ctrl-C
        _note("interrupted")
        return _exit_code(signal.SIGINT)
    except BrokenPipeError:  # rlp envs | head: stop quietly, as other command-line tools do
        # Python flushes stdout once more at exit; point it at devnull so that flush succeeds.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _exit_code(signal.SIGPIPE)
    finally:
        warnings.formatwarning = python_format  # main() called from Python code leaves it as it was


if __name__ == "__main__":
    sys.exit(main())
