"""The ``rlp`` command line: what each subcommand (train, sweep, report, envs, agents) does.

The arguments each takes, their types and help are in ``cli_parser``; :func:`main` parses the
command line with it and runs the subcommand it names.

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
from typing import Any

from rl_plasticity.cli_parser import EXIT_USAGE, build_parser
from rl_plasticity.errors import ConfigError

EXIT_OK, EXIT_FAILED = 0, 1


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


#: each subcommand's implementation, by its name in :func:`~rl_plasticity.cli_parser.build_parser`
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train,
    "sweep": _cmd_sweep,
    "report": _cmd_report,
    "envs": _cmd_envs,
    "agents": _cmd_agents,
}


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
        code = COMMANDS[args.command](args)
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
