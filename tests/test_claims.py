"""`attnbench leaderboard --claims SPEC`: a spec's published findings tested on synthetic records whose answer is
known (a real gap, no gap, a reversed gap, too few seeds, rows that do not exist), and the spec's claims checked
when it is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnbench.cli import main
from attnbench.errors import ConfigError
from attnbench.suite.spec import load_spec
from tests.test_leaderboard import correct_array, write_record

SPEC_HEAD = """\
name: heads
output_dir: {out}
base: [task=sentiment, model=transformer, attention=multihead]
axes:
  seed: [1, 2, 3]
  attention.heads: [1, 2, 4, 8, 16]
"""

CLAIMS = """\
claims:
  - source: Paper A (2017), Table 1
    says: one head is worse than eight
    better: multihead[attention.heads=8]
    worse: multihead[attention.heads=1]
    published_delta: 0.9
  - source: Paper B (2018)
    says: one head is better than eight
    better: multihead[attention.heads=1]
    worse: multihead[attention.heads=8]
  - source: Paper C (2019)
    says: four heads beat two
    better: multihead[attention.heads=4]
    worse: multihead[attention.heads=2]
  - source: Paper D (2020)
    says: sixteen heads beat one
    better: multihead[attention.heads=16]
    worse: multihead[attention.heads=1]
"""


def write_spec(tmp_path: Path, claims: str = CLAIMS, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(SPEC_HEAD.format(out=tmp_path / "sweep") + claims)
    return path


@pytest.fixture()
def heads_runs(tmp_path) -> Path:
    """Accuracy by head count (16 heads never trained): 1 head ~60%, 8 heads ~90% (a real gap); 2 and 4 heads both ~85% from the same
    predictions but for a handful of examples (no gap); 3 seeds each."""
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        for heads, rate in ((1, 0.6), (8, 0.9)):
            write_record(runs, "multihead", "transformer", seed, correct_array(rate, 10 * heads + seed),
                         extra=(f"attention.heads={heads}",))
        base = correct_array(0.85, 100 + seed)
        write_record(runs, "multihead", "transformer", seed, base, extra=("attention.heads=2",))
        near = base.copy()
        near[seed] = 1 - near[seed]
        write_record(runs, "multihead", "transformer", seed, near, extra=("attention.heads=4",))
    return runs


def board(runs: Path, out: Path, spec: Path, capsys=None) -> dict:
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(out), "--samples", "300",
                 "--baseline", "multihead[attention.heads=8]", "--claims", str(spec)]) == 0
    return json.loads((out / "leaderboard.json").read_text())


def test_each_claim_gets_a_verdict_from_the_two_level_bootstrap(heads_runs, tmp_path, capsys):
    spec = write_spec(tmp_path)
    claims = board(heads_runs, tmp_path / "board", spec)["claims"]
    a, b, c, d = claims
    assert a["verdict"] == "reproduced"
    assert a["delta"] == pytest.approx(0.3, abs=0.05) and a["test"]["p_holm"] < 0.05
    assert a["test"]["delta_low"] > 0 and a["test"]["family_size"] == 3
    assert a["better_row"] == "multihead [attention.heads=8]" and a["worse_row"] == "multihead [attention.heads=1]"
    # the same pair read the other way round: significantly reversed, and the interval turns with it
    assert b["verdict"] == "contradicted (significantly reversed)"
    assert b["delta"] == pytest.approx(-a["delta"]) and b["test"]["delta_high"] < 0
    # 4 vs 2 heads: the same models but for 3 examples in 400 -> no evidence either way
    assert c["verdict"] in ("same direction, not significant", "opposite direction, not significant")
    assert c["test"]["p_holm"] > 0.5
    # rows that were never trained cannot be tested, and say so
    assert d["verdict"] == "not testable" and "no section has records of both rows" in d["note"]
    # Holm over the three tests: each corrected p is at least its own p
    assert all(r["test"]["p_holm"] >= r["test"]["p"] for r in (a, b, c))
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    section = md.split("## Published claims", 1)[1].split("## Provenance", 1)[0]
    assert "Paper A (2017), Table 1: one head is worse than eight (published Δ +0.9). Here (sentiment / sst2, " \
           "transformer): multihead [attention.heads=8] 9" in section
    assert "**reproduced**" in section and "**contradicted (significantly reversed)**" in section
    assert "Paper D (2020): sixteen heads beat one. Here: **not testable**" in section
    out = capsys.readouterr().out
    assert "claim (sentiment / sst2, transformer): reproduced: Paper A (2017), Table 1: one head is worse than eight" in out


def test_with_fewer_than_three_seeds_a_claim_has_a_direction_but_no_test(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2):
        for heads, rate in ((1, 0.6), (8, 0.9)):
            write_record(runs, "multihead", "transformer", seed, correct_array(rate, 10 * heads + seed),
                         extra=(f"attention.heads={heads}",))
    spec = write_spec(tmp_path, CLAIMS.split("  - source: Paper B")[0])
    (claim,) = board(runs, tmp_path / "board", spec)["claims"]
    assert claim["verdict"] == "same direction, untested" and "test" not in claim
    assert claim["test_examples_only"]["p"] < 0.01  # these trained models do differ
    assert claim["note"] == "n < 3 seeds: seed variance cannot be estimated"
    assert "(examples only, these trained models: p" in claim["sentence"]


def test_without_claims_the_leaderboard_has_no_claims_section(heads_runs, tmp_path):
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(heads_runs), "--out", str(tmp_path / "b"),
                 "--samples", "100"]) == 0
    assert json.loads((tmp_path / "b" / "leaderboard.json").read_text())["claims"] == []
    assert "Published claims" not in (tmp_path / "b" / "leaderboard.md").read_text()


BAD = {
    "no better": ("  - {source: X, says: y, worse: multihead}", "claims[0] has no better"),
    "same row": ("  - {source: X, says: y, better: multihead, worse: multihead}", "better and worse name the same row"),
    "malformed": ("  - {source: X, says: y, better: 'multihead[attention.heads]', worse: multihead}",
                  "claims[0].better multihead[attention.heads]: use VARIANT or VARIANT[KEY=VALUE,...]"),
    "untrained variant": ("  - {source: X, says: y, better: additive, worse: multihead}",
                          "claims[0].better: the sweep trains no additive (attention: multihead)"),
    "value not swept": ("  - {source: X, says: y, better: 'multihead[attention.heads=32]', worse: multihead}",
                        "attention.heads=32 is not a value of axis attention.heads (1, 2, 4, 8, 16)"),
    "unknown key": ("  - {source: X, says: y, better: multihead, worse: multihead, published: 1}",
                    "published"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_claim_is_refused_when_the_spec_is_loaded(case, tmp_path):
    entry, message = BAD[case]
    spec = write_spec(tmp_path, "claims:\n" + entry + "\n")
    with pytest.raises(ConfigError) as err:
        load_spec(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_claims_that_do_not_load_stop_the_leaderboard_before_anything_is_written(heads_runs, tmp_path, capsys):
    for name, claims in (("none.yaml", ""), ("bad.yaml", "claims:\n" + BAD["same row"][0] + "\n")):
        spec = write_spec(tmp_path, claims, name=name)
        out = tmp_path / f"board-{name}"
        assert main(["leaderboard", "--wandb", "disabled", "--runs", str(heads_runs), "--out", str(out),
                     "--claims", str(spec)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("attnbench: error:")
        assert ("has no claims: block" if name == "none.yaml" else "better and worse name the same row") in err[0]
        assert not out.exists()


def test_the_committed_ablation_specs_name_rows_they_run():
    root = Path(__file__).resolve().parent.parent / "experiments"
    for name, count in (("ablation_heads_cpu.yaml", 2), ("ablation_scaling_cpu.yaml", 3), ("ablation_heads.yaml", 2),
                        ("ablation_scaling.yaml", 1)):
        spec = load_spec(root / name, check_cells=False)
        assert len(spec.claims) == count
        cells = {tuple(sorted((k, str(v)) for k, v in cell.values if k != "seed")) for cell in spec.cells()}
        for claim in spec.claims:
            for ref in (claim.better, claim.worse):
                settings = dict(ref.settings)
                assert any(all(dict(c).get(k, v) == v for k, v in settings.items())
                           and dict(c).get("attention", ref.attention) == ref.attention for c in cells), ref


def test_the_report_shows_each_claim_with_its_verdict_escaped(heads_runs, tmp_path, capsys):
    spec = write_spec(tmp_path, CLAIMS.replace("one head is worse than eight", "one head is worse than <b>eight</b>"))
    out = tmp_path / "report"
    assert main(["report", "--wandb", "disabled", "--runs", str(heads_runs), "--out", str(out), "--samples", "200",
                 "--claims", str(spec)]) == 0
    html = (out / "report.html").read_text()
    claims = html.split('<section id="claims"', 1)[1].split("</section>", 1)[0]
    assert '<a href="#claims">published claims</a>' in html
    assert claims.count("<li>") == 4 and claims.count('<b class="verdict">') == 4
    assert "one head is worse than &lt;b&gt;eight&lt;/b&gt;" in claims  # the spec's text is escaped, never markup
    assert '<b class="verdict">reproduced</b>' in claims and "**" not in claims
    assert "claim (sentiment / sst2, transformer): reproduced:" in capsys.readouterr().out


def test_the_claims_go_to_the_wandb_leaderboard_run_as_a_table(heads_runs, tmp_path):
    from tests.helpers import wandb_records

    spec = write_spec(tmp_path)
    out = tmp_path / "board"
    assert main(["leaderboard", "--wandb", "offline", "--runs", str(heads_runs), "--out", str(out), "--samples", "100",
                 "--claims", str(spec)]) == 0
    (run_file,) = out.glob("wandb/offline-run-*/run-*.wandb")
    history = {k: v for item in wandb_records(run_file, "history") for k, v in item.items()}
    assert history["leaderboard/claims/_type"] == "table-file"
    (table,) = out.glob("wandb/offline-run-*/files/media/table/leaderboard/claims_*.table.json")
    data = json.loads(table.read_text())
    assert data["columns"] == ["claim", "section", "model", "verdict", "sentence"]
    assert [row[3] for row in data["data"]] == [c["verdict"] for c in json.loads((out / "leaderboard.json").read_text())["claims"]]
    assert data["data"][3][1:3] == [None, None]  # the claim no section could test


def test_a_row_without_the_named_value_is_never_compared(tmp_path):
    """Every run at dropout 0.1, so no row is labelled with it: a claim about dropout 0.5 must not take the 0.1 rows
    for it (the --baseline rule, where a setting that splits no rows is no condition, would), and the claim about
    0.1 is tested."""
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(runs, "additive", "rnn", seed, correct_array(0.9, seed), extra=("model.dropout=0.1",))
        write_record(runs, "dot", "rnn", seed, correct_array(0.6, 20 + seed), extra=("model.dropout=0.1",))
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""\
name: dropout
output_dir: {tmp_path / "sweep"}
base: [task=sentiment, model=rnn]
axes:
  seed: [1, 2, 3]
  attention: [additive, dot]
  model.dropout: [0.1, 0.5]
claims:
  - {{source: X, says: additive beats dot at dropout 0.5, better: 'additive[model.dropout=0.5]', worse: 'dot[model.dropout=0.5]'}}
  - {{source: Y, says: additive beats dot at dropout 0.1, better: 'additive[model.dropout=0.1]', worse: 'dot[model.dropout=0.1]'}}
""")
    assert main(["leaderboard", "--wandb", "disabled", "--runs", str(runs), "--out", str(tmp_path / "b"),
                 "--samples", "200", "--claims", str(spec)]) == 0
    at_05, at_01 = json.loads((tmp_path / "b" / "leaderboard.json").read_text())["claims"]
    assert at_05["verdict"] == "not testable" and "section" not in at_05
    assert at_01["verdict"] == "reproduced"
    assert (at_01["better_row"], at_01["worse_row"]) == ("additive", "dot")
