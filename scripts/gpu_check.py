"""Every GPU figure of attnbench in one prepared run that ends inside a short allocation (issue 18).

    python scripts/gpu_check.py --out results/bench/gpu            # on one H100/H200, under 9 minutes
    python scripts/gpu_check.py --smoke --out /tmp/gpu-smoke       # the same steps on a CPU, tiny sizes (a test)

Steps, one after another, each a child process with its own log (`logs/<step>.log`) and time limit, a failed step
recorded and the next still run (the exit status is non-zero if any failed):

1. `pytest`: the attention contract on the GPU (ATTNBENCH_TEST_DEVICE=cuda: SDPA's CUDA kernels and the Triton
   additive kernel compiled for real are the fast paths checked) and the kernel test (fp32 at full precision, TF32,
   bf16; forward and backward against the explicit path).
2. `bench`: `attnbench bench` at B=32, H=8, Dh=64, bf16, T 128/512/2048/4096: every fast path's ratio to
   F.scaled_dot_product_attention, and the explicit paths.
3. `harness`: `attnbench harness` on the Multi30k transformer of the GPU protocol, eager (Lightning vs plain loop)
   and `--compare trainer.compile=false,true`.
4. `multi30k`: one Multi30k en->de transformer cell of experiments/leaderboard.yaml (scaled_dot, seed 1), timed.
5. `sst2` and `cnndm`: one SST-2 and one CNN/DM BiLSTM cell of the same spec (additive, seed 1); CNN/DM capped at
   `--cnndm-epochs` epochs to fit the allocation, its full-run time extrapolated per epoch.

Then `summary.json` (each step's status and seconds, the targets and whether each is met) and `suite.md` (the
estimate of the 90-cell GPU suite's time and how it was made). A step that would start with less time left than
it needs (`--budget`) is skipped, and says so.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "leaderboard.yaml"

# Targets of issue 18, checked against the outputs.
DOT_KINDS = ("dot", "scaled_dot", "general", "multihead")
DOT_MAX_RATIO, DOT_LENGTHS = 1.15, (128, 512, 2048)
ADDITIVE_MAX_RATIO, ADDITIVE_AT = 8.0, 512
HARNESS_MIN_RATIO = 0.92
BLEU_TARGET, BLEU_SECONDS = 35.0, 60.0
SUITE_TARGET_MIN = 45.0

# Tiny sizes that make every step run on a CPU in seconds (--smoke): the same commands, smaller.
SMOKE_RUN = ["trainer.accelerator=cpu", "trainer.precision=32-true", "task.limits.train=64", "task.limits.validation=32",
             "task.limits.test=32", "trainer.max_epochs=1", "model.embed_dim=16", "model.hidden_dim=16",
             "model.num_layers=1", "model.ff_dim=32", "task.probes=0", "task.decoding.val_examples=8",
             "task.decoding.beam_size=1", "task.tokenizer.vocab_size=500", "trainer.max_tokens=null",
             "trainer.batch_size=16"]


@dataclass
class Step:
    name: str
    command: list[str]
    needs_s: float  # what it takes at most, to decide whether it still fits the budget
    env: dict[str, str] = field(default_factory=dict)
    status: str = "not run"
    seconds: float | None = None
    detail: str = ""


@functools.cache
def protocol_spec():
    """experiments/leaderboard.yaml, read once (every step's cell and every epoch cap come from it)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from attnbench.suite.spec import load_spec

    return load_spec(SPEC, check_cells=False)


def cell_overrides(task: str, model: str, attention: str, seed: int = 1) -> list[str]:
    """The cell's overrides exactly as `attnbench sweep experiments/leaderboard.yaml` would run it, minus its
    output folder (the check writes under --out)."""
    from attnbench.suite.spec import cell_from_args

    cell = cell_from_args(protocol_spec(),
                          [f"task={task}", f"model={model}", f"attention={attention}", f"seed={seed}"])
    return [o for o in cell.overrides if not o.startswith("output_dir=")]


def protocol_epochs(task: str, model: str) -> int:
    """The cell's trainer.max_epochs in experiments/leaderboard.yaml (the last one set wins, as in the config)."""
    values = [o.split("=", 1)[1] for o in cell_overrides(task, model, "additive") if o.startswith("trainer.max_epochs=")]
    return int(values[-1])


def steps(args: argparse.Namespace, out: Path) -> list[Step]:
    python, attnbench = sys.executable, [sys.executable, "-m", "attnbench"]
    smoke = args.smoke
    device = "cpu" if smoke else "cuda"
    runs = out / "runs"
    extra = [*SMOKE_RUN] if smoke else []
    data = [f"data_dir={args.data}"] if args.data else []
    common = [*data, "wandb.mode=disabled", f"output_dir={runs}", *extra]

    tests = ["tests/test_attention.py", "tests/test_additive_kernel.py"]
    pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    if smoke:
        pytest += ["-k", "contract_with_unequal_widths or compiled_on_cuda"]
    bench = [*attnbench, "bench", "--device", device, "--out", str(out / "bench")]
    bench += (["--batch-sizes", "2", "--heads", "2", "--head-dim", "8", "--dtypes", "fp32", "--lengths", "16,32",
               "--warmup", "0", "--repeats", "1"] if smoke else
              ["--batch-sizes", "32", "--heads", "8", "--head-dim", "64", "--dtypes", "bf16",
               "--lengths", "128,512,2048,4096"])

    translation = cell_overrides("translation", "transformer", "scaled_dot")
    harness_sizes = ["--steps", "3", "--warmup", "1", "--rounds", "1"] if smoke else ["--steps", "200", "--warmup", "30"]
    harness_cfg = [o for o in translation if not o.startswith(("run_id=", "seed="))] + [*data, *extra]
    harness = [*attnbench, "harness", *harness_sizes, "--out", str(out / "harness"), *harness_cfg]
    # --smoke compares precisions instead, through the same --compare path: inductor's C++ build of the compiled
    # model takes minutes on a CPU.
    compiled = [*attnbench, "harness", *harness_sizes, "--compare",
                "trainer.precision=32-true,bf16-mixed" if smoke else "trainer.compile=false,true",
                "--out", str(out / "harness"), *harness_cfg]
    sst2 = cell_overrides("sentiment", "rnn", "additive")
    cnndm = cell_overrides("summarization", "rnn", "additive") + [f"trainer.max_epochs={args.cnndm_epochs}"]
    return [
        # Limits (seconds) sized for an H100/H200 so that the whole run fits 9 minutes; --smoke fits them easily.
        Step("pytest", pytest, 100, env={"ATTNBENCH_TEST_DEVICE": device}),
        Step("bench", bench, 60),
        Step("harness", harness, 45),
        Step("harness-compile", compiled, 90),
        Step("multi30k", [*attnbench, "run", *translation, *common], 130),
        Step("sst2", [*attnbench, "run", *sst2, *common], 50),
        Step("cnndm", [*attnbench, "run", *cnndm, *common], 70),
    ]


def run_steps(plan: list[Step], out: Path, budget_s: float) -> None:
    """Each step in turn, within its own limit and what is left of the budget. A step over its limit gets SIGTERM
    (an `attnbench run` then records itself as interrupted, with the epochs it finished, which the estimate
    extrapolates from), then SIGKILL 30 s later."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for step in plan:
        left = budget_s - (time.monotonic() - start)
        if left < step.needs_s * 0.5:
            step.status, step.detail = "skipped", f"{left:.0f} s of the {budget_s:.0f} s budget left"
            print(f"[gpu_check] {step.name}: skipped ({step.detail})", flush=True)
            continue
        limit = min(step.needs_s, left)
        print(f"[gpu_check] {step.name} (limit {limit:.0f} s): {' '.join(step.command)}", flush=True)
        began = time.monotonic()
        with open(logs / f"{step.name}.log", "w") as log:
            child = subprocess.Popen(step.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **step.env})
            try:
                code = child.wait(timeout=limit)
                step.status = "ok" if code == 0 else f"failed (exit {code})"
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                step.status = f"stopped at its {limit:.0f} s limit"
        step.seconds = round(time.monotonic() - began, 1)
        print(f"[gpu_check] {step.name}: {step.status} in {step.seconds} s", flush=True)


def record(runs: Path, task: str) -> dict[str, Any] | None:
    for path in sorted(runs.glob("*/metrics.json")):
        data = json.loads(path.read_text())
        if data.get("task") == task and data.get("kind", "model") == "model":
            return data
    return None


def test_metric(rec: dict[str, Any], name: str) -> float | None:
    value = rec.get("metrics", {}).get("test", {}).get(name)
    return value.get("mean", value.get("value")) if isinstance(value, dict) else value


def targets(out: Path) -> list[dict[str, Any]]:
    """Each issue-18 target with the measured figure and whether it is met (None: not measured)."""
    found: list[dict[str, Any]] = []

    def add(name: str, figure: Any, met: bool | None, note: str = "") -> None:
        found.append({"target": name, "measured": figure, "met": met, "note": note})

    bench = next((out / "bench").glob("*.json"), None) if (out / "bench").exists() else None
    if bench is not None:
        rows = [r for r in json.loads(bench.read_text())["results"] if r["path"] == "fast" and r["status"] == "ok"]
        dot = {(r["variant"], r["length"]): r["ratio_to_sdpa"] for r in rows if r["variant"] in DOT_KINDS}
        worst = max((v for (_, t), v in dot.items() if t in DOT_LENGTHS), default=None)
        add(f"dot kinds <= {DOT_MAX_RATIO}x SDPA for T {DOT_LENGTHS[0]}..{DOT_LENGTHS[-1]}", worst,
            None if worst is None else worst <= DOT_MAX_RATIO, json.dumps({f"{v}@{t}": round(r, 3) for (v, t), r in dot.items()}))
        additive = {r["length"]: r["ratio_to_sdpa"] for r in rows if r["variant"] == "additive"}
        at = additive.get(ADDITIVE_AT)
        add(f"additive <= {ADDITIVE_MAX_RATIO}x SDPA at T={ADDITIVE_AT}", at, None if at is None else at <= ADDITIVE_MAX_RATIO)
        longest = max(additive, default=None)
        add("additive trains at T=4096", longest, None if longest is None else longest >= 4096)
    for path in sorted((out / "harness").glob("harness-*.json")) if (out / "harness").exists() else []:
        h = json.loads(path.read_text())
        if h.get("key") == "trainer.compile":
            add("trainer.compile gain (tokens/s, compiled / eager)", h["ratios"][-1], None, path.name)
        elif "ratio" in h:
            ratio = h["ratio"]
            add(f"Lightning / plain loop >= {HARNESS_MIN_RATIO}", ratio, ratio >= HARNESS_MIN_RATIO,
                f"{path.name}: plain {h['plain_tokens_per_second']:,.0f}, Lightning "
                f"{h['harness_tokens_per_second']:,.0f} tokens/s, {h['precision']}")
    rec = record(out / "runs", "translation")
    if rec is not None:
        bleu, seconds = test_metric(rec, "bleu"), rec["cost"].get("train_seconds")
        add(f"Multi30k transformer test BLEU >= {BLEU_TARGET} in <= {BLEU_SECONDS:.0f} s of training",
            {"bleu": bleu, "train_seconds": seconds, "epochs": rec["cost"].get("epochs")},
            None if bleu is None or seconds is None else bleu >= BLEU_TARGET and seconds <= BLEU_SECONDS)
    return found


def cell_seconds(rec: dict[str, Any] | None, max_epochs: int, full_train: int | None = None,
                 capped: bool = False) -> tuple[float | None, str]:
    """A cell's seconds (training, validation, test). A run that completed as the protocol runs it is measured; a
    run cut short (`capped` epochs, or stopped at its step limit) is extrapolated per epoch to the protocol's
    max_epochs (an upper bound: early stopping may end it sooner), its training seconds scaled by full_train / the
    examples it trained on."""
    if rec is None:
        return None, "no record"
    cost = rec["cost"]
    train, validation, test = (cost.get(k) or 0.0 for k in ("train_seconds", "validation_seconds", "test_seconds"))
    epochs = cost.get("epochs") or 0
    examples = rec.get("data", {}).get("splits", {}).get("train", {}).get("examples")
    scale = full_train / examples if full_train and examples else 1.0
    if rec.get("status") == "completed" and not capped and scale == 1.0:
        return train + validation + test, f"{epochs} epochs, measured"
    if not epochs:
        return None, f"{rec.get('status')} before its first epoch ended"
    per_epoch = (train * scale + validation) / epochs
    how = f"{rec.get('status')} after {epochs} epochs"
    how += f" on {examples:,} articles (training x{scale:.1f})" if scale != 1.0 else ""
    return per_epoch * max_epochs + test, how + f", extrapolated to {max_epochs} epochs (upper bound)"


def suite_estimate(out: Path, device: str, epochs: dict[str, int], cnndm_full_train: int | None
                   ) -> tuple[str, float | None]:
    """suite.md: the 90-cell suite's time on one GPU from the three measured cells, and how."""
    per_task = {
        "translation": cell_seconds(record(out / "runs", "translation"), epochs["translation"]),
        "sentiment": cell_seconds(record(out / "runs", "sentiment"), epochs["sentiment"]),
        "summarization": cell_seconds(record(out / "runs", "summarization"), epochs["summarization"],
                                      full_train=cnndm_full_train, capped=True),
    }
    lines = [f"# The 90-cell GPU suite (`experiments/leaderboard.yaml`): an estimate, on {device}", "",
             "Measured by `scripts/gpu_check.py`: one cell per task, run exactly as the sweep runs it. The estimate",
             "assumes every cell of a task costs what the measured one did (both backbones, all five variants, each",
             "seed), one cell at a time on one GPU; additive attention inside a transformer costs more than the dot",
             "kinds (the bench ratios in this folder say by how much), so it is a lower bound for those 6 cells of",
             "each task. An early-stopped cell ends sooner than its epoch cap, a cell that runs to it later.", "",
             "| task | measured cell | seconds | how | 30 cells (min) |", "|---|---|---:|---|---:|"]
    total = 0.0
    for task, (seconds, how) in per_task.items():
        cell = {"translation": "transformer scaled_dot s1", "sentiment": "rnn additive s1",
                "summarization": "rnn additive s1"}[task]
        if seconds is None:
            lines.append(f"| {task} | {cell} | — | {how} | — |")
            total = float("nan")
            continue
        lines.append(f"| {task} | {cell} | {seconds:.0f} | {how} | {30 * seconds / 60:.1f} |")
        total += 30 * seconds / 60
    verdict = ("not estimated: a cell is missing" if total != total else
               f"**{total:.0f} minutes** on one GPU ({'meets' if total <= SUITE_TARGET_MIN else 'misses'} the "
               f"{SUITE_TARGET_MIN:.0f}-minute target); with `--jobs N` on N GPUs about {total:.0f}/N")
    lines += ["", f"Estimated suite time: {verdict}.", ""]
    return "\n".join(lines), (None if total != total else total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "gpu")
    parser.add_argument("--smoke", action="store_true", help="the same steps on a CPU with tiny sizes (seconds)")
    parser.add_argument("--data", help="data_dir for the runs (default: the runs' own, $ATTNBENCH_DATA_DIR)")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all steps (default 540)")
    parser.add_argument("--cnndm-epochs", type=int, default=2, help="epochs of the CNN/DM cell (default 2)")
    parser.add_argument("--cnndm-full-train", type=int, default=30000,
                        help="training articles of the protocol's CNN/DM (default 30000, the local subset): the "
                             "estimate scales the measured training time by this / the articles the run had")
    args = parser.parse_args(argv)
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA GPU here: run it on one, or pass --smoke to try the steps on this CPU",
                  file=sys.stderr)
            return 2
        device = torch.cuda.get_device_name(0)
    else:
        device = "cpu (--smoke: tiny sizes, no figure means anything)"
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    plan = steps(args, out)
    run_steps(plan, out, args.budget)
    epochs = {task: 1 if args.smoke else protocol_epochs(task, model) for task, model in
              (("translation", "transformer"), ("sentiment", "rnn"), ("summarization", "rnn"))}
    suite, minutes = suite_estimate(out, device, epochs, None if args.smoke else args.cnndm_full_train)
    (out / "suite.md").write_text(suite)
    summary = {"device": device, "smoke": args.smoke, "budget_s": args.budget,
               "steps": [{"name": s.name, "status": s.status, "seconds": s.seconds, "detail": s.detail,
                          "command": s.command} for s in plan],
               "targets": targets(out), "suite_minutes": minutes}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for t in summary["targets"]:
        print(f"[gpu_check] target {t['target']}: {t['measured']} ({'met' if t['met'] else 'not met' if t['met'] is False else 'stated'})")
    print(suite)
    return 0 if all(s.status == "ok" for s in plan) else 1


if __name__ == "__main__":
    sys.exit(main())
