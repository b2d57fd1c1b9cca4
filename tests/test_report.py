"""`attnbench report`: report.html from synthetic records whose contents are known (learning histories, attention
maps, explain probes, missing cells, failed and malformed records, a single seed, a 400-token map), checked as
HTML and in headless Chromium (no console errors, every image loaded, the tables' rows, sorting; a screenshot is
saved to $ATTNBENCH_ARTIFACTS, default .artifacts/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from attnbench.cli import main
from attnbench.suite.report_data import MAX_KEYS, best_window, learning_curves
from attnbench.suite.leaderboard import analyze
from tests.test_leaderboard import correct_array, write_record
from tests.test_leaderboard_explain import write_explain

ROOT = Path(__file__).resolve().parents[1]
LONG = 400  # key tokens of the long probe


def add_history(run_dir: Path, accuracies: list[float], seconds: float = 5.0) -> None:
    record = json.loads((run_dir / "metrics.json").read_text())
    record["history"] = [{"step": 10 * (i + 1), "epoch": i, "train_seconds": seconds * (i + 1), "train_loss": 1.0 / (i + 1),
                          "metrics": {"val/loss": 0.5, "val/accuracy": a}} for i, a in enumerate(accuracies)]
    (run_dir / "metrics.json").write_text(json.dumps(record))


def add_maps(run_dir: Path, heads: int, seed: int) -> None:
    """attention/attention.npz as the AttentionMaps callback writes it: probe 7 (3 tokens) and a 400-token probe 9
    whose mass sits on positions 200-219."""
    rng = np.random.default_rng(seed)
    short = rng.dirichlet(np.ones(3), size=heads)[:, None, :]
    long = np.full((heads, 1, LONG), 0.1 / LONG)
    long[:, :, 200:220] += 0.9 / 20
    arrays = {"ids": np.array([7, 9])}
    for probe, weights, tokens in ((7, short, ["a", "fine", "film"]), (9, long, [f"w{i}" for i in range(LONG)])):
        arrays[f"probe{probe}.pooling"] = weights.astype(np.float32)
        arrays[f"probe{probe}.pooling.queries"] = np.array(["<cls>"])
        arrays[f"probe{probe}.pooling.keys"] = np.array(tokens)
    (run_dir / "attention").mkdir()
    np.savez_compressed(run_dir / "attention" / "attention.npz", **arrays)


@pytest.fixture()
def runs(tmp_path) -> Path:
    """sentiment x rnn: additive and multihead (4 heads) with 3 seeds, histories and maps, additive explained;
    dot with one seed and no history; transformer only for dot (missing cells); a failed run and a cut record."""
    root = tmp_path / "runs"
    for seed in (1, 2, 3):
        for attention, rate, heads in (("additive", 0.7, 1), ("multihead", 0.8, 4)):
            run_dir = write_record(root, attention, "rnn", seed, correct_array(rate, seed + heads))
            # multihead's seed 3 stopped early: two validations
            curve = [rate - 0.1 + 0.01 * seed, rate + 0.01 * seed, rate + 0.02][: 2 if (attention, seed) == ("multihead", 3) else 3]
            add_history(run_dir, curve)
            add_maps(run_dir, heads, seed)
            if attention == "additive":
                write_explain(run_dir, 0.3, 0.05)
    write_record(root, "dot", "rnn", 1, correct_array(0.75, 11))
    write_record(root, "dot", "transformer", 1, correct_array(0.72, 12))
    write_record(root, "scaled_dot", "rnn", 1, None, status="failed")
    (root / "partial").mkdir()
    (root / "partial" / "metrics.json").write_text('{"run_id": "partial", "status": "compl')
    return root


class Page(HTMLParser):
    """The parts of report.html the tests read: tables (rows of cells with data-sort), images, links, text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[dict]]] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []
        self._cell: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag == "td":
            self._cell = {"sort": attrs.get("data-sort"), "title": attrs.get("title"), "text": ""}
            self.tables[-1][-1].append(self._cell)
        elif tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data


def report(runs: Path, out: Path) -> str:
    assert main(["report", "--wandb", "disabled", "--runs", str(runs), "--out", str(out), "--samples", "200"]) == 0
    return (out / "report.html").read_text()


def test_report_html_holds_every_part_and_says_what_is_missing(runs, tmp_path):
    html = report(runs, tmp_path / "out")
    page = Page(html)
    text = " ".join(" ".join(page.text).split())
    sections = analyze([runs], samples=200).sections
    assert len(sections) == 1 and len(page.tables) == 1
    rows = [r for r in page.tables[0] if r]  # the header row has no td
    assert len(rows) == len(sections[0].rows)
    labels = [(r[0]["text"], r[1]["text"]) for r in rows]
    assert ("additive", "rnn") in labels and ("general", "transformer") not in labels  # general never ran
    assert ("additive", "transformer") in labels  # a missing cell of the attention x backbone grid
    assert "missing" in dict(((r[0]["text"], r[1]["text"]), r[2]["text"]) for r in rows)[("additive", "transformer")]
    # CI and n on hover of the value cell
    additive = next(r for r in rows if (r[0]["text"], r[1]["text"]) == ("additive", "rnn"))
    assert re.search(r"n = 3 \(seeds 1, 2, 3\).*95% Student-t CI", additive[2]["title"])
    # self-contained: every image inline, no external address anywhere
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not [u for u in page.urls if not u.startswith(("data:", "#"))]
    assert "http://" not in html and "https://" not in html
    # what is missing is said, not hidden
    assert "skipped" in text and "partial" in text and "scaled_dot" in text  # the failed and the cut record
    assert "dot (rnn): no learning history in seed 1" in text
    assert "additive (transformer): no completed record" in text
    assert "fewer than 3 seeds" in text and "dot (rnn)" in text
    assert "dot (rnn): no readable attention maps" in text
    # the long probe shows a readable window over the tokens that carry the mass
    shown = re.search(rf"showing key tokens (\d+)–(\d+) of {LONG}", text)
    first, last = int(shown.group(1)), int(shown.group(2))
    assert last - first + 1 == MAX_KEYS and first <= 201 and last >= 220
    # figures: learning curves, quality vs cost, 2 probes x pooling
    assert len(page.images) == 4
    assert "Learning curves" in text and "Quality vs cost" in text and "Attention maps side by side" in text
    assert "Provenance" in text and "abc123" in text and "cpu: test (2 cores)" in text and "torchmetrics accuracy" in text


def test_learning_curves_pool_seeds_step_by_step(runs):
    section = analyze([runs], samples=200).sections[0]
    curves, missing = learning_curves(section)
    by_label = {c.row.label: c for c in curves}
    assert set(by_label) == {"additive", "multihead"}
    m = by_label["multihead"]
    assert m.steps.tolist() == [10, 20, 30] and m.seeds_at.tolist() == [3, 3, 2]  # seed 3 stopped early
    assert m.mean[0] == pytest.approx(100 * np.mean([0.71, 0.72, 0.73]))
    assert (m.low[1], m.high[1]) == pytest.approx((81.0, 83.0))
    assert m.mean[2] == pytest.approx(82.0) and m.seconds.tolist() == [5.0, 10.0, 15.0]
    assert any("dot (rnn): no learning history" in note for note in missing)


def test_best_window_finds_the_mass():
    mass = np.zeros(100)
    mass[60:64] = 1.0
    window = best_window(mass, 10)
    assert window.start <= 60 and window.stop >= 64 and window.stop - window.start == 10 and window.cut
    whole = best_window(np.ones(5), 10)
    assert (whole.start, whole.stop, whole.cut) == (0, 5, False)


def test_report_refuses_bad_input_in_one_line_and_writes_nothing(runs, tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["report", "--wandb", "disabled", "--runs", str(runs), "--out", str(file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["report", "--wandb", "disabled", "--runs", str(runs), str(runs / "partial"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "count twice" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------- in a real browser


def chromium() -> tuple[str, str]:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if found and driver:
        try:
            import selenium  # noqa: F401
        except ImportError:
            found = None
    if not (found and driver):
        message = ("headless Chromium with Selenium is needed to test report.html: `apt-get install chromium "
                   "chromium-driver` and `pip install -e .[dev]`")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found, driver


def test_report_in_headless_chromium(runs, tmp_path):
    binary, driver_path = chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    report(runs, tmp_path / "out")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # No network: Chromium's own background connections are switched off, and the page has no external asset.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get((tmp_path / "out" / "report.html").resolve().as_uri())
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        images = browser.find_elements(By.TAG_NAME, "img")
        assert len(images) == 4
        assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) > 0
                   for i in images)
        table = browser.find_element(By.CSS_SELECTOR, "table.sortable")
        body = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(body) == len(analyze([runs], samples=200).sections[0].rows)
        header = table.find_elements(By.CSS_SELECTOR, "thead th")
        column = [h.text for h in header].index("accuracy")

        def values() -> list[float | None]:
            out = []
            for row in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
                key = row.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-sort")
                out.append(float(key) if re.fullmatch(r"-?[\d.]+(e-?\d+)?", key or "") else None)
            return out

        header[column].click()
        ascending = values()
        present = [v for v in ascending if v is not None]
        assert present == sorted(present) and ascending[len(present):] == [None] * (len(ascending) - len(present))
        assert header[column].get_attribute("aria-sort") == "ascending"
        header[column].click()
        descending = [v for v in values() if v is not None]
        assert descending == sorted(present, reverse=True)
        rows = analyze([runs], samples=200).sections[0].rows
        top = max((r for r in rows if not r.missing), key=lambda r: r.stats["metrics"]["accuracy"]["mean"])
        first = browser.find_element(By.CSS_SELECTOR, "tbody tr").find_elements(By.TAG_NAME, "td")
        assert (first[0].text, first[1].text) == (top.label, top.model if not top.trivial else "—")
        artefacts = Path(os.environ.get("ATTNBENCH_ARTIFACTS", ROOT / ".artifacts"))
        artefacts.mkdir(parents=True, exist_ok=True)
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1400, min(int(height), 12000))
        assert browser.save_screenshot(str(artefacts / "report-test.png"))
        assert (artefacts / "report-test.png").stat().st_size > 10_000
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        browser.quit()


def test_the_report_figures_go_to_the_wandb_leaderboard_run(runs, tmp_path, capsys):
    """--wandb offline: the leaderboard table and every figure of the page as images of one "leaderboard" run."""
    from tests.helpers import wandb_records

    out = tmp_path / "out"
    assert main(["report", "--wandb", "offline", "--runs", str(runs), "--out", str(out), "--samples", "200"]) == 0
    assert "logged to W&B run" in capsys.readouterr().out
    (run_file,) = out.glob("wandb/offline-run-*/run-*.wandb")
    history = {k: v for item in wandb_records(run_file, "history") for k, v in item.items()}
    assert history["leaderboard/table/_type"] == "table-file"
    images = sorted(k.split("/", 2)[2].removesuffix("/_type") for k in history
                    if k.startswith("leaderboard/report/") and k.endswith("/_type"))
    assert images == sorted(["sentiment-sst2/learning-curves", "sentiment-sst2/quality-vs-cost",
                             "sentiment-sst2/probe7-pooling", "sentiment-sst2/probe9-pooling"])
    assert len(Page((out / "report.html").read_text()).images) == len(images)


def test_long_cross_attention_maps_show_a_readable_window_and_render(runs):
    """A CNN/DailyMail-sized cross-attention map (60 summary steps x 400 article tokens) in two rows, one with 2
    heads: the figure shows 48 key tokens around the mass and the first 40 query steps, and still renders."""
    from PIL import Image
    import io

    from attnbench.suite.report_data import MAX_QUERIES, Map, RowMaps, probe_grids
    from attnbench.suite.report_plots import grid_figure

    section = analyze([runs], samples=200).sections[0]
    rows = [r for r in section.rows if not r.missing and not r.trivial][:2]
    maps = []
    for i, row in enumerate(rows):
        heads = 1 + i
        weights = np.full((heads, 60, LONG), 0.2 / LONG)
        weights[:, :, 300:310] += 0.8 / 10
        source = [f"s{t}" for t in range(LONG)]
        maps.append(RowMaps(row, row.runs[0], {3: {"cross_attention.layer0": Map(weights, [f"t{q}" for q in range(60)],
                                                                                  source)}}))
    (grid,), notes = probe_grids(maps)
    assert notes == []
    assert grid.keys.start <= 300 and grid.keys.stop >= 310 and grid.keys.stop - grid.keys.start == MAX_KEYS
    assert (grid.queries.start, grid.queries.stop, grid.queries.total) == (0, MAX_QUERIES, 60)
    assert f"of {LONG}" in grid.note and "query steps 1–40 of 60" in grid.note
    image = Image.open(io.BytesIO(grid_figure(section, grid)))
    assert 400 < image.width < 6000 and image.height > 200
