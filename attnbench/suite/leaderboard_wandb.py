"""The leaderboard in W&B: one "leaderboard" run of the project (job_type "leaderboard") holding the table (a
`wandb.Table` with the CSV's columns and typed values, one row per section x row x test metric) and every plot
the leaderboard wrote, as images under the same names. Offline by default (its folder is <out>/wandb/, synced with
`wandb sync`); an online leaderboard is checked (API key, server reachable) before any record is read."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from attnbench.config import default_wandb_mode
from attnbench.errors import ConfigError, ResourceError
from attnbench.suite.columns import CSV_FIELDS
from attnbench.suite.leaderboard_render import csv_rows
from attnbench.suite.rows import Report
from attnbench.tracking.wandb_file import finish_and_wait
from attnbench.tracking.wandb_online import check_online

MODES = ("online", "offline", "disabled")


def wandb_mode(requested: str | None) -> str:
    """--wandb, else the default of a run's wandb.mode ($WANDB_MODE, else offline)."""
    return requested or default_wandb_mode()


def check_leaderboard_wandb(mode: str) -> None:
    """Refuse an unknown --wandb mode, and an online one without a key or a reachable server, before any work."""
    if mode not in MODES:
        raise ConfigError(f"--wandb {mode}: use one of {', '.join(MODES)}")
    if mode == "online":
        check_online("attnbench leaderboard --wandb online", offline_hint="use --wandb offline (sync later with "
                     "`wandb sync`) or --wandb disabled")


def log_leaderboard(report: Report, files: dict[str, str | bytes], out_dir: Path, mode: str, project: str,
                    entity: str | None, settings: dict[str, Any]) -> str | None:
    """Log the leaderboard to a new W&B run; its id (None when disabled)."""
    if mode == "disabled":
        return None
    try:
        return _log(report, files, out_dir, mode, project, entity, settings)
    except Exception as error:  # the files are written: say so, in one line
        raise ResourceError(f"the leaderboard is written to {out_dir}, but logging it to W&B ({mode}) failed: "
                            f"{type(error).__name__}: {error}; rerun with --wandb disabled, or fix W&B and rerun") from error


def _log(report: Report, files: dict[str, str | bytes], out_dir: Path, mode: str, project: str, entity: str | None,
         settings: dict[str, Any]) -> str:
    import wandb
    from PIL import Image

    run = wandb.init(project=project, entity=entity, job_type="leaderboard", group="leaderboard",
                     name=f"leaderboard-{time.strftime('%Y%m%d-%H%M%S')}", dir=str(out_dir), mode=mode,
                     config=settings, tags=["leaderboard", *sorted(report.tasks)],
                     settings=wandb.Settings(init_timeout=60, silent=True))
    try:
        rows = csv_rows(report)
        # An empty CSV cell is no value: a missing row's "" would clash with the column's type (flagged: bool).
        table = wandb.Table(columns=list(CSV_FIELDS), data=[[None if row[c] == "" else row[c] for c in CSV_FIELDS]
                                                            for row in rows])
        images = {f"leaderboard/{name.removesuffix('.png')}": wandb.Image(Image.open(io.BytesIO(content)))
                  for name, content in files.items() if name.endswith(".png")}
        claims = {"leaderboard/claims": wandb.Table(
            columns=["claim", "section", "model", "verdict", "sentence"],
            data=[[c["claim"], c.get("section"), c.get("model"), c["verdict"], c["sentence"]] for c in report.claims])
                  } if report.claims else {}
        run.log({"leaderboard/table": table, **images, **claims})
        run.summary.update({"records": report.n_records, "sections": len(report.sections),
                            "skipped": len(report.skipped), "warnings": len(report.warnings)})
        return run.id
    finally:
        finish_and_wait(run)
