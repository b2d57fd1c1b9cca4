"""The `attnbench` command: run, baseline, config, list, sweep, leaderboard, report, bench, harness, verify."""

from __future__ import annotations

import argparse
import os
from collections import Counter
import signal
import sys
from pathlib import Path

from attnbench.config.describe import BLOCKS
from attnbench.training import signals
from attnbench.errors import AttnbenchError, ConfigError

EXAMPLES = """examples:
  attnbench run task=sentiment attention=additive model=rnn seed=1
  attnbench run attention=multihead attention.score=additive attention.heads=4 model=transformer
  attnbench run attention=custom attention.impl=my_pkg.attn:MyAttention trainer=smoke
  attnbench baseline task=translation       # the task's trivial baselines as run records
  attnbench config attention=dot            # print the resolved config, run nothing
  attnbench sweep experiments/leaderboard.yaml --jobs 2
  attnbench leaderboard --runs results/sweeps/leaderboard --out results
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnbench", description="Compare attention mechanisms across NLP tasks.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    overrides = {"nargs": "*", "metavar": "OVERRIDE", "help": "group=option or dotted.key=value"}
    run = sub.add_parser("run", help="train and test one configuration, writing a run record")
    run.add_argument("--spec", metavar="SPEC", help="run one cell of a sweep spec, named by axis=value overrides "
                     "(what `wandb agent` does for `attnbench sweep --wandb`)")
    run.add_argument("overrides", **overrides)
    baseline = sub.add_parser("baseline", help="score the task's trivial baselines (majority class, copy the source, "
                              "lead-3) on its test set and write them as run records")
    baseline.add_argument("overrides", **overrides)
    config = sub.add_parser("config", help="print the resolved config of a run without running it, or (--schema) "
                            "every key of a config block with its type, default, rule and meaning")
    config.add_argument("--schema", metavar="BLOCK", choices=BLOCKS,
                        help=f"list the keys of one block: {', '.join(BLOCKS)}; with overrides (e.g. task=translation), "
                        "only the keys of that task's family")
    config.add_argument("overrides", **overrides)
    data = sub.add_parser("data", help="what a task's data looks like before any training: examples, token lengths, "
                          "truncation, [UNK] rate, vocabulary coverage, labels, trivial baselines")
    data.add_argument("--json", action="store_true", help="print the report as JSON")
    data.add_argument("overrides", **overrides)
    sub.add_parser("list", help="list attention variants, tasks, models and trainer presets")
    sweep = sub.add_parser("sweep", help="run every cell of a grid spec; a re-run runs only what is not done")
    sweep.add_argument("spec", help="sweep spec, e.g. experiments/leaderboard.yaml")
    sweep.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="cells in parallel (one GPU each where there are GPUs; a share of the cores otherwise)")
    sweep.add_argument("--dry-run", action="store_true", help="show each cell, its status and its command; run nothing")
    sweep.add_argument("--only", action="append", metavar="AXIS=VALUE[,VALUE]",
                       help="only the cells with these axis values (repeatable; e.g. --only task=translation "
                            "--only model=transformer): a part of the grid, same cells and folders as the whole")
    sweep.add_argument("--wandb", action="store_true",
                       help="create an equivalent W&B grid sweep for `wandb agent` (with --dry-run: print its config)")
    sweep.add_argument("--launcher", choices=("local", "slurm"), default="local",
                       help="local: run the cells here (default); slurm: submit them as Slurm job arrays (submitit)")
    sweep.add_argument("--status", action="store_true",
                       help="each cell: done / running / pending / failed / cancelled, from Slurm and the records")
    sweep.add_argument("--cancel", action="store_true", help="scancel this sweep's Slurm jobs that have not ended")
    slurm = sweep.add_argument_group("slurm resources (override the spec's slurm: block)")
    slurm.add_argument("--partition", help="Slurm partition")
    slurm.add_argument("--account", help="Slurm account")
    slurm.add_argument("--time", help="time limit per cell: minutes, HH:MM:SS or D-HH:MM:SS (default 60)")
    slurm.add_argument("--gpus-per-cell", type=int, dest="gpus_per_cell", metavar="N", help="GPUs per cell (default 0)")
    slurm.add_argument("--cpus-per-cell", type=int, dest="cpus_per_cell", metavar="N", help="cores per cell (default 1)")
    slurm.add_argument("--mem", help="memory per cell, e.g. 16G (default: the cluster's)")
    slurm.add_argument("--array-parallelism", type=int, dest="array_parallelism", metavar="N",
                       help="cells of one array running at once (default 64)")
    slurm.add_argument("--signal-delay", type=int, dest="signal_delay_s", metavar="S",
                       help="seconds before the time limit at which a cell stops and is requeued (default 90)")
    slurm.add_argument("--sbatch", action="append", metavar="KEY=VALUE",
                       help="any other sbatch option, repeatable (e.g. --sbatch qos=high --sbatch constraint=a100)")
    board = sub.add_parser("leaderboard", help="turn run records into leaderboard.md/.csv/.json and plots")
    board.add_argument("--runs", default="results/sweeps/leaderboard",
                       help="folder searched (recursively) for run records (default %(default)s)")
    board.add_argument("--out", default="results", help="where leaderboard.* and plots/ go (default %(default)s)")
    _analysis_options(board, "attnbench leaderboard", "heading of leaderboard.md", "the table and plots")
    page = sub.add_parser("report", help="one self-contained report.html: the leaderboard table, learning curves, "
                          "quality vs cost and attention maps side by side")
    page.add_argument("--runs", nargs="+", default=["results/sweeps/leaderboard"], metavar="DIR",
                      help="folders searched (recursively) for run records (default %(default)s)")
    page.add_argument("--out", default="results", help="where report.html goes (default %(default)s)")
    _analysis_options(page, "attnbench report", "heading of the page", "the table and the report's figures")
    bench = sub.add_parser("bench", help="forward+backward time and memory of every variant vs F.scaled_dot_product_attention")
    bench.add_argument("--variants", type=_names, help="comma-separated (default: every built-in variant)")
    bench.add_argument("--lengths", type=_ints, help="sequence lengths (default GPU 64..4096, CPU 64,128,256)")
    bench.add_argument("--batch-sizes", type=_ints, help="batch sizes (default GPU 8,32, CPU 2)")
    bench.add_argument("--dtypes", type=_names, help="fp32, bf16, fp16 (default GPU bf16,fp32, CPU fp32)")
    bench.add_argument("--paths", type=_names, help="fast (no weights), explicit (weights) (default both)")
    bench.add_argument("--heads", type=int, help="heads H (default GPU 8, CPU 2)")
    bench.add_argument("--head-dim", type=int, help="head width Dh (default GPU 64, CPU 32)")
    bench.add_argument("--warmup", type=int, help="untimed calls before timing (default GPU 3, CPU 1)")
    bench.add_argument("--repeats", type=int, help="timed calls; the median is reported (default GPU 10, CPU 3)")
    bench.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s)")
    bench.add_argument("--out", default="results/bench", help="folder for <device>.json and .png (default %(default)s)")
    explain = sub.add_parser("explain", help="is the attention an explanation? faithfulness diagnostics of a "
                             "completed run's best checkpoint on its test set (explain.json beside the record)")
    explain.add_argument("run_dir", help="a completed run folder, e.g. results/runs/<run_id>")
    explain.add_argument("--permutations", type=int, default=100, help="attention permutations per example "
                         "(default %(default)s)")
    explain.add_argument("--ig-steps", type=int, default=20, help="Integrated Gradients steps (default %(default)s)")
    explain.add_argument("--sample", type=int, default=500, help="seq2seq: test examples explained, a fixed random "
                         "sample; 0 = all (default %(default)s)")
    check = sub.add_parser("verify", help="re-run a recorded run from its saved config and compare every metric")
    check.add_argument("run_dir", help="a run folder, e.g. results/runs/<run_id>")
    check.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (default %(default)s)")
    check.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (default %(default)s)")
    check.add_argument("--keep", action="store_true", help="keep the re-run's folder (printed) instead of removing it")
    harness = sub.add_parser("harness", help="tokens/s of the Lightning harness vs a plain PyTorch loop, same batches")
    harness.add_argument("overrides", **overrides)
    harness.add_argument("--steps", type=int, default=200, help="training steps per side (default %(default)s)")
    harness.add_argument("--warmup", type=int, default=20, help="untimed steps first (default %(default)s)")
    harness.add_argument("--rounds", type=int, default=2,
                         help="times each side runs, in alternating order, each on a fresh model (default %(default)s)")
    harness.add_argument("--compare", metavar="KEY=A,B", default=None,
                         help="instead of plain vs Lightning: the Lightning harness at each value of one setting on the "
                              "same batches, ratios to the first (e.g. trainer.precision=32-true,bf16-mixed)")
    harness.add_argument("--jobs", metavar="N,M", default=None,
                         help="instead: the machine's throughput with N, M, ... harness processes at once, each in the "
                              "environment `sweep --jobs` gives its cells (CPU threads split between them)")
    harness.add_argument("--out", default="results/bench",
                         help="folder for harness-<device>-<config>[-<key>|-jobs].json")
    return parser


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 128,512") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AttnbenchError as err:
        print(f"attnbench: error: {err}", file=sys.stderr)
        return 2
    except signals.Interrupted as err:  # a signal before any run folder existed
        print(f"attnbench: interrupted by {signals.describe(err.signum)}; nothing was recorded", file=sys.stderr)
        return signals.exit_code(err.signum)
    except BrokenPipeError:  # `attnbench sweep ... --status | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def cmd_run(args: argparse.Namespace) -> int:
    signals.die_with_parent()
    with signals.handling():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from attnbench.config import load_config

    overrides = args.overrides
    if args.spec:
        from attnbench.suite.spec import cell_from_args, load_spec

        # Only this cell's config is built (and checked by load_config below), not the whole grid's.
        overrides = list(cell_from_args(load_spec(args.spec, check_cells=False), overrides).overrides)
    folder = next((o.split("=", 1)[1] for o in overrides if o.startswith("resume=") and o != "resume=auto"), None)
    cfg = resume_folder_config(folder, overrides) if folder else load_config(overrides)
    from attnbench.training.run import describe_failure, run  # heavy imports only once the config is known to be valid

    try:
        run_dir = run(cfg)
    except BaseException as err:
        recorded = getattr(err, "attnbench_run_dir", None)
        signum = signals.received()
        if isinstance(err, AttnbenchError) and recorded is None:
            raise  # refused before the run started: one line, exit 2, nothing written
        if not isinstance(err, Exception) and signum is None:
            raise
        where = f"status recorded in {recorded}/metrics.json" if recorded else "it stopped before its run folder existed"
        print(f"attnbench: run failed: {describe_failure(err)} ({where})", file=sys.stderr)
        return signals.exit_code(signum) if signum is not None else 1
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # under DDP every rank returns here; one line is enough
        return 0
    print(f"run {cfg.run_id} completed: {run_dir / 'metrics.json'}")
    if cfg.explain:
        from attnbench.explain.runner import explain_run, summary_lines

        try:
            report = explain_run(run_dir)
        except Exception as err:  # the run stands; its diagnostics did not happen, which the exit code says
            print(f"attnbench: explain failed: {type(err).__name__}: {err} (the run is complete; retry with "
                  f"`attnbench explain {run_dir}`)", file=sys.stderr)
            return 1
        print("\n".join(summary_lines(report, run_dir)))
    return 0


def resume_folder_config(folder: str, overrides: list[str]):
    """resume=<run folder>: that run's saved configuration, continued in place."""
    from attnbench.config import load_saved_config

    path = Path(folder)
    if len(overrides) != 1:
        raise ConfigError(f"resume={folder} takes the configuration from the folder: pass no other overrides "
                          "(or use resume=auto with the run's overrides)")
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"resume={folder}: no run folder with a config.yaml there; pass results/runs/<run_id>")
    cfg = load_saved_config(path / "config.yaml")
    cfg.resume, cfg.output_dir, cfg.run_id = "auto", str(path.parent), path.name
    return cfg


def cmd_baseline(args: argparse.Namespace) -> int:
    from attnbench.config import load_config

    cfg = load_config(args.overrides)
    from attnbench.suite.baseline import run_baselines
    for result in run_baselines(cfg):
        state = "written" if result.written else "up to date"
        print(f"baseline {result.name} ({cfg.task.name}/{cfg.task.dataset} test): {result.summary}: {state} in "
              f"{result.run_dir}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from attnbench.config import load_config, to_yaml
    from attnbench.config.describe import family_view, render_schema

    if args.schema:
        family = load_config(args.overrides).task.family if args.overrides else None
        print(render_schema(args.schema, family), end="")
        return 0
    # The other families' task keys are left out: a classification config shows no decoding block (config.yaml
    # of a run keeps every key).
    print(to_yaml(family_view(load_config(args.overrides))), end="")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from attnbench.config import load_config
    from attnbench.suite.data_report import data_report, render, render_json

    report = data_report(load_config(args.overrides))
    print((render_json if args.json else render)(report), end="")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from attnbench.attention import available_attention
    from attnbench.config import config_dir, group_options
    from attnbench.models import MODELS

    sections = {
        "attention variants (attention=NAME; multihead wraps any of them: attention.score=NAME)": available_attention(),
        "tasks (task=NAME)": {name: _yaml_summary(config_dir() / "task" / f"{name}.yaml") for name in group_options("task")},
        "models (model=NAME)": MODELS,
        "trainer presets (trainer=NAME)": {
            name: _yaml_summary(config_dir() / "trainer" / f"{name}.yaml") for name in group_options("trainer")
        },
    }
    for title, entries in sections.items():
        print(title)
        width = max(map(len, entries), default=0)
        for name, text in sorted(entries.items()):
            print(f"  {name:<{width}}  {text}")
        print()
    return 0


def _yaml_summary(path: Path) -> str:
    """The first comment line of a config file is its one-line description."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def cmd_sweep(args: argparse.Namespace) -> int:
    from attnbench.suite.spec import load_spec

    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: give a positive number of parallel cells")
    spec = load_spec(args.spec)
    from attnbench.suite import sweep, wandb_grid  # heavy (Lightning, datasets): once the spec is known to be valid
    if args.only and args.wandb:
        raise ConfigError("--only narrows a local or Slurm sweep; a W&B grid sweep (--wandb) always has every cell")
    spec = spec.select(args.only)
    if args.launcher == "slurm" or args.status or args.cancel:
        return _sweep_slurm(args, spec)
    if args.wandb:
        config = wandb_grid.wandb_sweep_config(spec)
        if args.dry_run:
            import yaml

            print(yaml.safe_dump(config, sort_keys=False), end="")
            return 0
        cfg = spec.config(spec.cells()[0])
        sweep_id = wandb_grid.create_wandb_sweep(spec, project=cfg.wandb.project, entity=cfg.wandb.entity)
        print(f"created W&B sweep {sweep_id} ({len(spec.cells())} cells); on each machine run:\n"
              f"  wandb agent {cfg.wandb.entity + '/' if cfg.wandb.entity else ''}{cfg.wandb.project}/{sweep_id}")
        return 0
    if args.dry_run:
        for status in sweep.plan(spec):
            print(f"{sweep.verb(status)} {status.cell.id}: {status.state}: {status.reason}\n"
                  f"     attnbench run {' '.join(status.cell.overrides)}")
        return 0
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # A shell starts background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt handler;
    # the sweep must still stop (and stop its cells) on SIGINT, so the handler is set explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        outcomes = sweep.Runner(spec, jobs=args.jobs).run()
    except KeyboardInterrupt:
        print("attnbench: sweep interrupted; run the same command again to finish the remaining cells", file=sys.stderr)
        return 130
    return 0 if all(o.state in ("done", "reused", "skipped") for o in outcomes) else 1


def _sweep_slurm(args: argparse.Namespace, spec) -> int:
    from attnbench.suite import slurm

    if args.wandb or args.jobs != 1:
        raise ConfigError("--launcher slurm, --status and --cancel take neither --wandb nor --jobs: Slurm runs "
                          "--array-parallelism cells at once")
    if args.status and args.cancel:
        raise ConfigError("give --status or --cancel, not both")
    flags = {key: getattr(args, key) for key in slurm.FLAGS if key != "sbatch"}
    flags["sbatch"] = slurm.parse_sbatch_options(args.sbatch)
    launcher = slurm.SlurmLauncher(spec, slurm.resources(spec.slurm, flags))
    if args.status:
        rows = launcher.status()
        width = max(len(cell.id) for cell, *_ in rows)
        for cell, state, job_id, detail in rows:
            print(f"{cell.id:<{width}}  {state:<13}  {job_id:<12}  {detail}")
        counts = Counter(state for _, state, *_ in rows)  # in order of first appearance
        print(f"sweep {spec.name}: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        return 0
    if args.cancel:
        launcher.cancel()
        return 0
    if args.dry_run:
        launcher.dry_run()
        return 0
    launcher.submit()
    return 0


def _analysis_options(parser: argparse.ArgumentParser, title: str, title_help: str, logged: str) -> None:
    """The options the leaderboard and the report share: the baseline, the bootstrap, the heading and W&B."""
    parser.add_argument("--baseline", default="additive", metavar="VARIANT",
                        help="attention variant the others are tested against, on the same backbone and settings "
                             "(default %(default)s); VARIANT[KEY=VALUE,...] fixes settings of the baseline row, "
                             "e.g. multihead[attention.heads=8] compares every head count with 8 heads")
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap resamples (default %(default)s)")
    parser.add_argument("--claims", default=None, metavar="SPEC",
                        help="a sweep spec whose claims: block lists published findings (e.g. "
                             "experiments/ablation_heads_cpu.yaml): each is tested on the rows, one sentence with a "
                             "verdict each in the output and on stdout")
    parser.add_argument("--title", default=title, help=title_help)
    parser.add_argument("--wandb", choices=("online", "offline", "disabled"), default=None,
                        help=f"log {logged} to a W&B 'leaderboard' run (default: $WANDB_MODE, else offline; "
                             "offline runs go to <out>/wandb/, `wandb sync` uploads them)")
    parser.add_argument("--wandb-project", default="attnbench", help="W&B project (default %(default)s)")
    parser.add_argument("--wandb-entity", default=None, help="W&B team or user (default: your default entity)")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_report(args: argparse.Namespace) -> int:
    from attnbench.suite.leaderboard_wandb import wandb_mode
    from attnbench.suite.report import build_report

    report, path = build_report([Path(d) for d in args.runs], Path(args.out), baseline=args.baseline,
                                samples=args.samples, title=args.title, wandb=wandb_mode(args.wandb),
                                project=args.wandb_project, entity=args.wandb_entity,
                                claims=Path(args.claims) if args.claims else None)
    _print_analysis(report, f"report of {report.n_records} runs ({len(report.sections)} sections) written to {path}",
                    args)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from attnbench.suite.leaderboard import build_leaderboard
    from attnbench.suite.leaderboard_wandb import wandb_mode

    report = build_leaderboard(Path(args.runs), Path(args.out), baseline=args.baseline, samples=args.samples,
                               title=args.title, wandb=wandb_mode(args.wandb), project=args.wandb_project,
                               entity=args.wandb_entity, claims=Path(args.claims) if args.claims else None)
    _print_analysis(report, f"leaderboard of {report.n_records} runs ({len(report.tasks)} tasks) written to "
                    f"{', '.join(map(str, report.files))}", args)
    return 0


def _print_analysis(report, written: str, args: argparse.Namespace) -> None:
    """What a leaderboard or report run tells the user: warnings and skipped records on stderr, then what it wrote."""
    for warning in report.warnings:
        print(f"attnbench: warning: {warning}", file=sys.stderr)
    for problem in report.skipped:
        print(f"attnbench: skipped {problem}", file=sys.stderr)
    print(written)
    for claim in report.claims:
        where = f" ({claim['section']}, {claim['model']})" if "section" in claim else ""
        print(f"claim{where}: {claim['verdict']}: {claim['claim']}")
    if report.wandb_run_id:
        print(f"logged to W&B run {report.wandb_run_id} (project {args.wandb_project})")


def cmd_bench(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from attnbench.perf import bench

    device = bench.resolve_device(args.device)
    chosen = {key: getattr(args, key) for key in ("variants", "lengths", "batch_sizes", "dtypes", "paths", "heads",
                                                   "head_dim", "warmup", "repeats")}
    settings = replace(bench.BenchSettings.defaults(device), **{k: v for k, v in chosen.items() if v is not None})
    bench.check_settings(settings)
    results = bench.run_bench(settings, progress=lambda line: print(line, flush=True))
    files = bench.write_results(results, settings, Path(args.out))
    failed = [r for r in results if r.status == "error"]
    for r in failed:
        print(f"attnbench: {r.variant} {r.path} {r.dtype} B={r.batch} T={r.length} failed: {r.error}", file=sys.stderr)
    print(f"wrote {', '.join(map(str, files))}")
    return 1 if failed else 0


def cmd_harness(args: argparse.Namespace) -> int:
    from attnbench.config import load_config
    from attnbench.perf.harness import measure_compare, measure_harness, parse_compare, write_result
    from attnbench.perf.jobs import measure_jobs, parse_jobs

    if args.compare and args.jobs:
        raise ConfigError("--compare and --jobs measure different things: pass one of them")
    compare = parse_compare(args.compare) if args.compare else None  # a bad --compare fails before any loading
    cfg = load_config(args.overrides)
    if args.jobs:
        counts = parse_jobs(args.jobs)
        result = measure_jobs(args.overrides, counts, steps=args.steps, warmup=args.warmup)
        path = write_result(result, Path(args.out))
        print(f"{result.config} on {result.device}, {result.steps - result.warmup} timed steps per process, "
              "Lightning harness throughput with")
        for n, threads, rate, ratio in zip(result.jobs, result.threads, result.tokens_per_second(), result.ratios()):
            print(f"  {n} process(es) (OMP_NUM_THREADS={threads or 'unset'}): {rate:,.0f} tokens/s, ratio {ratio:.3f}")
        print(f"({path})")
        return 0
    if compare:
        result = measure_compare(cfg, *compare, steps=args.steps, warmup=args.warmup, rounds=args.rounds)
        path = write_result(result, Path(args.out))
        print(f"{result.config} on {result.device}, {result.steps - result.warmup} timed steps x {result.rounds} "
              f"rounds, padding {100 * result.padding_fraction:.1f}%, Lightning harness at {result.key}=")
        for value, precision, rate, ratio in zip(result.values, result.precisions, result.tokens_per_second(),
                                                 result.ratios()):
            print(f"  {value:>16} ({precision}): {rate:,.0f} tokens/s, ratio {ratio:.3f}")
        print(f"({path})")
        return 0
    result = measure_harness(cfg, steps=args.steps, warmup=args.warmup, rounds=args.rounds)
    path = write_result(result, Path(args.out))
    print(f"{result.config} on {result.device} ({result.precision}), {result.steps - result.warmup} timed steps x "
          f"{result.rounds} rounds, padding {100 * result.padding_fraction:.1f}%: plain loop "
          f"{result.plain_tokens_per_second:,.0f} tokens/s, Lightning harness {result.harness_tokens_per_second:,.0f} "
          f"tokens/s, ratio {result.ratio:.3f} ({path})")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from attnbench.explain.common import Settings
    from attnbench.explain.runner import explain_run, summary_lines

    if args.permutations < 1 or args.ig_steps < 2 or args.sample < 0:
        raise ConfigError("--permutations must be >= 1, --ig-steps >= 2 and --sample >= 0: pass e.g. --permutations "
                          "100 --ig-steps 20 --sample 500")
    report = explain_run(Path(args.run_dir), Settings(ig_steps=args.ig_steps, permutations=args.permutations,
                                                           sample=args.sample))
    print("\n".join(summary_lines(report, Path(args.run_dir))))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from attnbench.training.verify import verify

    if args.rtol < 0 or args.atol < 0:
        raise ConfigError("--rtol and --atol must be >= 0")
    checks, notes, rerun_dir = verify(Path(args.run_dir), rtol=args.rtol, atol=args.atol, keep=args.keep)
    for check in checks:
        print(check.line())
    for note in notes:
        print(f"note: {note}")
    failed = [c for c in checks if not c.passed]
    kept = f"; re-run kept in {rerun_dir}" if args.keep else ""
    print(f"verify {args.run_dir}: {len(checks) - len(failed)} of {len(checks)} metrics reproduced{kept}")
    return 1 if failed or not checks else 0


COMMANDS = {"baseline": cmd_baseline, "verify": cmd_verify, "explain": cmd_explain, "harness": cmd_harness, "bench": cmd_bench, "run": cmd_run, "config": cmd_config, "data": cmd_data, "list": cmd_list, "sweep": cmd_sweep, "leaderboard": cmd_leaderboard, "report": cmd_report}
