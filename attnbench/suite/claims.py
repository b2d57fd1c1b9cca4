"""Published claims, tested on the records: does a paper's finding reproduce here?

A sweep spec may list the findings it sets out to reproduce (`claims:`), each as two leaderboard rows, the one the
paper found better and the one it found worse, written like --baseline (`VARIANT` or `VARIANT[KEY=VALUE,...]`):

    claims:
      - source: Vaswani et al. (2017), Table 3 (A)
        says: one attention head is 0.9 BLEU worse than eight at equal compute
        better: multihead[attention.heads=8]
        worse: multihead[attention.heads=1]
        published_delta: 0.9

`attnbench leaderboard --claims SPEC` tests each claim in every section and backbone where both rows exist: the
difference better - worse of the section's primary metric (sign turned for a metric where lower is better), with
the leaderboard's two-level bootstrap (test examples paired, seeds resampled per side; n >= 3 seeds a side) and
Holm's correction over the claims tested, and writes one sentence per test with a verdict. The verdict is about
direction and significance only: a published size comes from another data set and model, so it is context, not a
target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from attnbench.errors import ConfigError
from attnbench.metrics.registry import METRICS
from attnbench.suite.formats import format_metric
from attnbench.suite.row_stats import Reference, paired_tests, settings_except
from attnbench.suite.rows import Row, Section
from attnbench.suite.stats import holm

ALPHA = 0.05


@dataclass
class ClaimSchema:
    """One `claims:` entry of a sweep spec (suite/spec.py SweepSchema)."""
    source: str = ""  # the citation: "Vaswani et al. (2017), Table 3 (A)"
    says: str = ""  # the finding, in words
    better: str = ""  # the row the paper found better: VARIANT or VARIANT[KEY=VALUE,...]
    worse: str = ""  # the row it found worse
    published_delta: Optional[float] = None  # the paper's better - worse, in its units (context only)
    task: Optional[str] = None  # only sections of this task (default: every section with both rows)
    model: Optional[str] = None  # only this backbone


@dataclass(frozen=True)
class Claim:
    source: str
    says: str
    better: Reference
    worse: Reference
    published_delta: float | None = None
    task: str | None = None
    model: str | None = None

    @property
    def text(self) -> str:
        return f"{self.source}: {self.says}"


def check_claims(entries: list[ClaimSchema], where: str, axes: dict[str, list[Any]] | None = None,
                 variants: set[str] | None = None) -> list[Claim]:
    """The spec's claims, checked: both rows named, parsable and different, and (given the spec's `axes` and the
    `variants` its cells train) naming only values the sweep has; one line per problem."""
    claims = []
    for i, entry in enumerate(entries):
        at = f"{where}: claims[{i}]"
        for key in ("source", "says", "better", "worse"):
            if not str(getattr(entry, key) or "").strip():
                raise ConfigError(f"{at} has no {key}: give source, says, better and worse "
                                  "(e.g. better: multihead[attention.heads=8])")
        better, worse = (Reference.parse(getattr(entry, key), what=f"{at}.{key}") for key in ("better", "worse"))
        if better == worse:
            raise ConfigError(f"{at}: better and worse name the same row ({entry.better}): name two different rows")
        for key, ref in (("better", better), ("worse", worse)):
            if variants and ref.attention not in variants:
                raise ConfigError(f"{at}.{key}: the sweep trains no {ref.attention} (attention: "
                                  f"{', '.join(sorted(variants))}): name a variant it trains")
            for name, value in ref.settings:
                known = [str(v) for v in (axes or {}).get(name, [])]
                if known and value not in known:
                    raise ConfigError(f"{at}.{key}: {name}={value} is not a value of axis {name} "
                                      f"({', '.join(known)}): name one the sweep runs")
        claims.append(Claim(entry.source.strip(), entry.says.strip(), better, worse, entry.published_delta,
                            entry.task, entry.model))
    return claims


def evaluate_claims(sections: list[Section], claims: list[Claim], samples: int) -> list[dict[str, Any]]:
    """One result per (claim, section, backbone) where the claim's rows exist, or one per claim saying why it could
    not be tested; Holm over the results that have a two-level bootstrap p."""
    results: list[dict[str, Any]] = []
    for claim in claims:
        found = [r for section in sections if claim.task in (None, section.task)
                 for r in _pairs(claim, section, samples)]
        results += found or [{"claim": claim.text, "source": claim.source, "says": claim.says,
                              "better": _name(claim.better), "worse": _name(claim.worse),
                              "published_delta": claim.published_delta,
                              "verdict": "not testable",
                              "note": "no section has records of both rows"
                                      + (f" for task {claim.task}" if claim.task else "")
                                      + (f" on backbone {claim.model}" if claim.model else "")}]
    tested = [r for r in results if r.get("test")]
    for result, p_holm in zip(tested, holm([r["test"]["p"] for r in tested])):
        result["test"]["p_holm"] = p_holm
        result["test"]["family_size"] = len(tested)
    for result in results:
        result.setdefault("verdict", _verdict(result))
        result["sentence"] = sentence(result)
    return results


def _name(ref: Reference) -> str:
    return ref.attention + (f"[{','.join(f'{k}={v}' for k, v in ref.settings)}]" if ref.settings else "")


def _pairs(claim: Claim, section: Section, samples: int) -> list[dict[str, Any]]:
    """The claim in one section: each worse row (on the claim's backbone) with its better row, same backbone and
    the same values of the settings neither side names. A named setting is checked in every run's configuration,
    not in the row label: a row whose runs share one value has no label for it (unlike --baseline, where such a
    setting is no condition), and a claim must never compare a row that does not have the value it names."""
    rows = [r for r in section.rows if not r.trivial and not r.missing and claim.model in (None, r.model)]
    named = {k for ref in (claim.better, claim.worse) for k, _ in ref.settings}
    out = []
    for worse in (r for r in rows if _is(r, claim.worse)):
        rest = settings_except(worse, named)
        for better in (r for r in rows if r is not worse and r.model == worse.model and _is(r, claim.better)):
            if all(rest[k] == v for k, v in settings_except(better, named).items() if k in rest):
                out.append(_compare(claim, section, better, worse, samples))
                break
    return out


def _is(row: Row, ref: Reference) -> bool:
    """Whether every run of `row` is the variant `ref` names, with the settings it names."""
    return row.attention == ref.attention and all(
        str(_setting(run.config, key)) == value for run in row.runs for key, value in ref.settings)


def _setting(config: dict, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _compare(claim: Claim, section: Section, better: Row, worse: Row, samples: int) -> dict[str, Any]:
    metric = section.primary
    sign = 1.0 if METRICS.get(metric) is None or METRICS[metric].better == "max" else -1.0
    result: dict[str, Any] = {
        "claim": claim.text, "source": claim.source, "says": claim.says, "section": section.name,
        "model": worse.model, "metric": metric, "better": _name(claim.better), "worse": _name(claim.worse),
        "better_row": better.label, "worse_row": worse.label, "published_delta": claim.published_delta,
        "better_stats": better.stats["metrics"].get(metric), "worse_stats": worse.stats["metrics"].get(metric),
    }
    means = [s["mean"] if s else None for s in (result["better_stats"], result["worse_stats"])]
    if None not in means:
        result["delta"] = sign * (means[0] - means[1])
    flagged = [row.label for row in (better, worse) if row.flags]
    if flagged:
        result["verdict"] = "not testable"
        result["note"] = f"{' and '.join(flagged)} flagged (degenerate): not tested"
        return result
    paired = paired_tests(better, worse, metric, samples)
    if paired.examples_only is not None:
        result["test_examples_only"] = _signed(paired.examples_only, sign)
    if paired.over_seeds is None:
        result["note"] = paired.note if paired.paired else f"{paired.note}: the two rows' runs cannot be paired"
        return result
    result["test"] = _signed(paired.over_seeds, sign)
    return result


def _signed(test: dict[str, float], sign: float) -> dict[str, float]:
    """A bootstrap result as better - worse in the claim's direction (for a lower-is-better metric, worse - better)."""
    low, high = sorted((sign * test["delta_low"], sign * test["delta_high"]))
    return {**test, "delta": sign * test["delta"], "delta_low": low, "delta_high": high}


def _verdict(result: dict[str, Any]) -> str:
    delta = result.get("delta")
    if delta is None:
        return "not testable"
    direction = "same direction" if delta > 0 else "opposite direction" if delta < 0 else "no difference"
    test = result.get("test")
    if test is None:
        return f"{direction}, untested"
    if test["p_holm"] < ALPHA:
        return "reproduced" if delta > 0 else "contradicted (significantly reversed)"
    return f"{direction}, not significant" if delta != 0 else "no difference"


def sentence(result: dict[str, Any]) -> str:
    """The claim and what the records say about it, in one Markdown sentence."""
    lead = f"{result['claim']}"
    if result.get("published_delta") is not None:
        lead += f" (published Δ {result['published_delta']:+g})"
    if "section" not in result:
        return f"{lead}. Here: **{result['verdict']}**: {result['note']}."
    metric = result["metric"]

    def side(row: str, stats: dict | None) -> str:
        if not stats:
            return f"{row} (no {metric})"
        spread = f" ± {format_metric(metric, stats['std'])}" if stats.get("std") is not None else ""
        return f"{row} {format_metric(metric, stats['mean'])}{spread} (n={stats['n']})"

    here = (f"Here ({result['section']}, {result['model']}): {side(result['better_row'], result['better_stats'])} vs "
            f"{side(result['worse_row'], result['worse_stats'])} {metric}")
    test, examples = result.get("test"), result.get("test_examples_only")
    if test:
        here += (f", Δ {format_metric(metric, test['delta'], signed=True)} "
                 f"[{format_metric(metric, test['delta_low'], signed=True)}, "
                 f"{format_metric(metric, test['delta_high'], signed=True)}], p (two-level bootstrap, Holm over "
                 f"{test['family_size']}) {test['p_holm']:.3g}")
    elif result.get("delta") is not None:
        here += f", Δ {format_metric(metric, result['delta'], signed=True)}"
    if examples and not test:
        here += f" (examples only, these trained models: p {examples['p']:.3g})"
    note = f" ({result['note']})" if result.get("note") else ""
    return f"{lead}. {here}: **{result['verdict']}**{note}."
