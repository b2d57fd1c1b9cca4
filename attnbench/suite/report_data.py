"""What the report shows of a section beyond the leaderboard's statistics, read from the records: learning curves
(metrics.json "history"), the attention maps of the validation probes (attention/attention.npz) with the explain
probes' importance (explain.json "probes"), and what is missing. Plain data: attnbench.suite.report_plots draws it.

Learning curves: one per row, its seeds pooled step by step: at each validation step, the mean over the seeds that
reached it and their range (min to max); the x of the time axis is the mean of those seeds' training seconds.

Attention maps: per row, the run of its lowest seed that saved maps; the probes are the validation examples every
variant and seed was shown (same ids); a map longer than the window shows the window of consecutive key positions
with the most attention mass, summed over the variants, and says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnbench.config import VAL_SLICE
from attnbench.metrics.registry import percent
from attnbench.suite.records import Run
from attnbench.suite.rows import Row, Section

MAX_KEYS = 48  # key tokens shown per map: ~0.2 in a token keeps a 7-point label legible
MAX_QUERIES = 40
PROBES_SHOWN = 2
MAX_HEADS = 8  # per-head panels of a layer (the head mean is always shown)


def scale(metric: str) -> float:
    """Recorded fractions are plotted as percentages, like the tables show them."""
    return 100.0 if percent(metric) else 1.0


# ----------------------------------------------------------------------------------------------- learning curves


@dataclass
class Curve:
    row: Row
    steps: np.ndarray
    seconds: np.ndarray  # mean training seconds of the seeds at each step
    mean: np.ndarray  # the validation metric (scaled), mean over the seeds at each step
    low: np.ndarray
    high: np.ndarray
    seeds_at: np.ndarray  # how many seeds reached each step
    train_loss: np.ndarray  # mean over seeds (NaN where none recorded)
    seeds: list[Any] = field(default_factory=list)
    key: str = ""  # the history key drawn: val/<metric>, or val_slice/<metric> (seq2seq: decoded validation slice)


def _history(run: Run) -> list[dict[str, Any]]:
    history = run.record.get("history")
    if not isinstance(history, list):
        return []
    return [e for e in history if isinstance(e, dict) and isinstance(e.get("step"), int)
            and isinstance(e.get("metrics"), dict)]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def learning_curves(section: Section) -> tuple[list[Curve], list[str]]:
    """The section's curves of the validation primary metric, and what is missing from them."""
    primary = section.primary
    factor = scale(primary)
    keys = (f"val/{primary}", f"{VAL_SLICE}/{primary}")  # seq2seq monitors BLEU/ROUGE on the decoded slice
    curves, missing = [], []
    for row in section.rows:
        if row.missing or row.trivial:
            continue
        by_step: dict[int, list[tuple[float, float, float]]] = {}
        seeds, without = [], []
        for run in row.runs:
            key = next((k for k in keys if any(k in e["metrics"] for e in _history(run))), keys[0])
            history = [e for e in _history(run) if key in e["metrics"]]
            if not history:
                without.append(run.record.get("seed"))
                continue
            seeds.append(run.record.get("seed"))
            for entry in history:
                by_step.setdefault(entry["step"], []).append(
                    (_number(entry["metrics"][key]) * factor, _number(entry.get("train_seconds")),
                     _number(entry.get("train_loss"))))
        if without:
            missing.append(f"{row.label} ({row.model}): no learning history in seed{'s' * (len(without) > 1)} "
                           f"{', '.join(map(str, without))} (a record written before attnbench kept one, or a run "
                           "without validation): rerun it to draw its curve")
        if not by_step:
            continue
        steps = np.array(sorted(by_step))
        points = [np.array(by_step[s], dtype=float) for s in steps]

        def stat(column: int, fn) -> np.ndarray:
            out = []
            for p in points:
                values = p[:, column][np.isfinite(p[:, column])]
                out.append(fn(values) if values.size else np.nan)
            return np.array(out)

        curves.append(Curve(row, steps, stat(1, np.mean), stat(0, np.mean), stat(0, np.min), stat(0, np.max),
                            np.array([len(p) for p in points]), stat(2, np.mean), seeds, key))
    return curves, missing


# ----------------------------------------------------------------------------------------------- attention maps


@dataclass
class Map:
    """One attention map of one run on one probe: (H, Tq, Tk) weights and the tokens."""

    weights: np.ndarray
    queries: list[str]
    keys: list[str]

    @property
    def heads(self) -> int:
        return self.weights.shape[0]


@dataclass
class RowMaps:
    row: Row
    run: Run
    maps: dict[int, dict[str, Map]]  # probe id -> map name -> map
    importance: dict[int, dict[str, Any]] = field(default_factory=dict)  # probe id -> explain.json probe entry

    @property
    def seed(self) -> Any:
        return self.run.record.get("seed")


@dataclass
class Window:
    start: int
    stop: int
    total: int

    @property
    def cut(self) -> bool:
        return self.stop - self.start < self.total

    def describe(self, what: str) -> str:
        return f"{what} {self.start + 1}–{self.stop} of {self.total}"


@dataclass
class ProbeGrid:
    """One probe and one map name across the rows: what one figure of the report shows."""

    probe: int
    name: str
    entries: list[tuple[RowMaps, Map | None]]  # every row with maps; None: this row's model has no such map
    keys: Window
    queries: Window
    note: str = ""

    @property
    def pooling(self) -> bool:
        return all(m is None or m.weights.shape[1] == 1 for _, m in self.entries)


def read_maps(run: Run) -> dict[int, dict[str, Map]] | None:
    """attention/attention.npz of a run (None: none saved, or unreadable)."""
    path = run.path / "attention" / "attention.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError):
        return None
    out: dict[int, dict[str, Map]] = {}
    for key, weights in arrays.items():
        match = re.fullmatch(r"probe(-?\d+)\.(.+)", key)
        if not match or key.endswith((".queries", ".keys")) or weights.ndim != 3:
            continue
        queries, keys = arrays.get(f"{key}.queries"), arrays.get(f"{key}.keys")
        if queries is None or keys is None or (len(queries), len(keys)) != weights.shape[1:]:
            continue
        out.setdefault(int(match.group(1)), {})[match.group(2)] = Map(
            np.nan_to_num(weights.astype(float)), [str(q) for q in queries], [str(k) for k in keys])
    return out or None


def _map_order(name: str) -> tuple:
    """pooling first, then self-attention, then cross-attention; layers by number."""
    kind = 0 if name.startswith("pooling") else 2 if name.startswith("cross") else 1
    return kind, name.split(".layer")[0], int(re.sub(r"\D", "", name.split(".")[-1]) or 0)


def row_maps(section: Section) -> tuple[list[RowMaps], list[str]]:
    """Per trained row, the maps of its lowest seed that saved any; what is missing."""
    found, missing = [], []
    for row in section.rows:
        if row.missing or row.trivial:
            continue
        for run in sorted(row.runs, key=lambda r: (r.record.get("seed") is None, r.record.get("seed") or 0)):
            maps = read_maps(run)
            if maps:
                found.append(RowMaps(row, run, maps, _importance(row, run)))
                break
        else:
            missing.append(f"{row.label} ({row.model}): no readable attention maps (attention/attention.npz) in its "
                           "runs")
    return found, missing


def _importance(row: Row, run: Run) -> dict[int, dict[str, Any]]:
    """explain.json's probes of this run (attnbench explain; classification only), by probe id."""
    for e in row.explained:
        if e.run is run:
            return {p["id"]: p for p in e.report.get("probes") or []
                    if isinstance(p, dict) and isinstance(p.get("id"), int) and isinstance(p.get("tokens"), list)}
    return {}


def best_window(mass: np.ndarray, width: int) -> Window:
    """The `width` consecutive positions with the largest total mass (all of them when there are fewer)."""
    total = len(mass)
    if total <= width:
        return Window(0, total, total)
    sums = np.convolve(np.nan_to_num(mass), np.ones(width), mode="valid")
    start = int(np.argmax(sums))
    return Window(start, start + width, total)


def probe_grids(maps: list[RowMaps]) -> tuple[list[ProbeGrid], list[str]]:
    """The figures of a section: per probe shown and map name, the rows side by side; what is missing."""
    if not maps:
        return [], []
    notes: list[str] = []
    probes: list[int] = []
    for rm in maps:
        probes += [p for p in sorted(rm.maps) if p not in probes]
    shared = [p for p in probes if all(p in rm.maps for rm in maps)]
    if len(shared) < len(probes):
        notes.append(f"probes {', '.join(map(str, sorted(set(probes) - set(shared))))} are not in every row's maps "
                     "(other probes or data): not shown")
    grids = []
    for probe in shared[:PROBES_SHOWN]:
        names = sorted({n for rm in maps for n in rm.maps[probe]}, key=_map_order)
        for name in names:
            entries = [(rm, rm.maps[probe].get(name)) for rm in maps]
            present = [m for _, m in entries if m is not None]
            shapes = {m.weights.shape[1:] for m in present}
            if len({tuple(m.keys) for m in present}) > 1:
                notes.append(f"probe {probe} {name}: the rows' maps are over different key tokens (other "
                             "tokenizers?): drawn with each row's own tokens")
            tq, tk = max(shapes)
            mass_k = np.zeros(tk)
            mass_q = np.zeros(tq)
            for m in present:
                if m.weights.shape[1:] == (tq, tk):
                    mass_k += m.weights.mean(0).sum(0)
                    mass_q += m.weights.mean(0).sum(1)
            keys = best_window(mass_k, MAX_KEYS)
            self_map = tq == tk and all(m.queries == m.keys for m in present)
            queries = Window(keys.start, keys.stop, tq) if self_map and keys.cut else Window(0, min(tq, MAX_QUERIES), tq)
            cut = [w.describe(what) for w, what in ((keys, "key tokens"), (queries, "query steps")) if w.cut]
            note = ""
            if cut:
                note = (f"long map: showing {' and '.join(cut)} (the window of {keys.stop - keys.start} key tokens "
                        "with the most attention mass, all variants summed" + ("" if not queries.cut or self_map
                                                                               else "; the first query steps") + ")")
            grids.append(ProbeGrid(probe, name, entries, keys, queries, note))
    return grids, notes
