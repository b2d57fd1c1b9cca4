"""Text steps in the task's tokenizer block (`task.tokenizer.normalizers` / `pre_tokenizers`, config/text_steps.py):
each step name builds and does what it says, bad steps fail validation in one line, bpe keeps exact detokenisation,
and with the lists empty the shipped tasks keep the cache key and the tokenizer they had before the lists existed."""

from __future__ import annotations

import gzip
import json
import shutil
import unicodedata
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from attnbench.cli import main
from attnbench.config import load_config
from attnbench.config.text_steps import NORMALIZERS, PRE_TOKENIZERS
from attnbench.data import build_tokenizer, tokenizer_hash
from attnbench.errors import ConfigError
from tests.helpers import TINY, run_record

IMDB = "A movie.<br /><br />Great!"
BR = {"replace": {"pattern": "<br\\s*/?>", "content": " "}}  # YAML: {replace: {pattern: "<br\\s*/?>", content: " "}}


def steps(kind: str, listed: list) -> str:
    """The override for a list of steps: JSON is YAML flow syntax, escapes included."""
    return f"task.tokenizer.{kind}={json.dumps(listed, ensure_ascii=False)}"


def tokenizer(tmp_path: Path, *overrides: str, texts: list[str] | None = None) -> Tokenizer:
    cfg = load_config([f"cache_dir={tmp_path}", *overrides])
    return build_tokenizer(texts or [IMDB, "some training text"], cfg.task.tokenizer, str(tmp_path), key="k")


# ---- the shipped tasks do not move -------------------------------------------------------------------------

# Computed with the code at git HEAD before these settings existed (tokenizers 0.23): the cache file each shipped
# task's default tokenizer settings get for key "k", and the sha256[:16] of the tokenizer JSON trained on TEXTS.
TEXTS = ["A movie.<br /><br />Great!", "Ein Mann fährt Fahrrad.", "the film is n't bad , it 's good",
         "Über café naïve 2024 résumé", "the the the cat sat on the mat .", "Two dogs run; one barks!",
         "ﬁne ＡＢＣ ½"] * 3
BEFORE = {
    "sentiment": ("f0dcc49ed658c7de", "2be67a9daff3ab01"),
    "summarization": ("cf86f365d16db5ec", "23f8b6c61921f36d"),
    "translation": ("64fe89b78546736b", "195bf743a279487f"),
    "translation_de_en": ("64fe89b78546736b", "195bf743a279487f"),
}
METASPACE = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}


def test_every_shipped_task_is_pinned():
    shipped = sorted(p.stem for p in (Path(__file__).parent.parent / "configs" / "task").glob("*.yaml"))
    assert shipped == sorted(BEFORE)


@pytest.mark.parametrize("task", sorted(BEFORE))
def test_empty_lists_keep_the_cache_key_and_the_tokenizer_of_before(task, tmp_path):
    settings = load_config([f"task={task}"]).task.tokenizer
    assert list(settings.normalizers) == [] and list(settings.pre_tokenizers) == []
    tok = build_tokenizer(TEXTS, settings, str(tmp_path), key="k")
    data = json.loads(tok.to_str())
    # The pipeline, readable: what a failing hash below has changed.
    assert data["normalizer"] == ({"type": "Lowercase"} if settings.lowercase else None)
    assert data["pre_tokenizer"] == ({"type": "WhitespaceSplit"} if settings.kind == "wordlevel" else METASPACE)
    digest, json_hash = BEFORE[task]
    assert [p.stem for p in (tmp_path / "tokenizers").glob("*.json")] == [digest]
    assert tokenizer_hash(tok) == json_hash


# ---- each step does what it says ---------------------------------------------------------------------------

# (step as YAML would list it, text, the normalised text); lowercase=false (but for `lowercase` itself, which it
# would refuse) so that only the step acts.
NORMALIZER_CASES = [
    ("nfc", "e\u0301t\u00e9", "\u00e9t\u00e9"),
    ("nfd", "\u00e9", "e\u0301"),
    ("nfkc", "ﬁne ＡＢＣ", "fine ABC"),
    ("nfkd", "ﬁ\u00e9", "fie\u0301"),
    ("lowercase", "ABC Éa", "abc éa"),
    ("strip", "  a b \n", "a b"),
    ({"strip": {"left": False}}, "  a b  ", "  a b"),
    ("strip_accents", "e\u0301", "e"),
    (BR, IMDB, "A movie.  Great!"),
    ({"replace": {"pattern": "\\p{P}"}}, "a, b!", "a b"),  # content defaults to "": delete the matches
    ({"bert": {"lowercase": False}}, "Héllo\tWorld\x00", "Héllo World"),
]
# (steps, text, the words); wordlevel, lowercase=false.
PRE_TOKENIZER_CASES = [
    (["whitespace_split"], "a movie.<br /> ok", ["a", "movie.<br", "/>", "ok"]),
    (["whitespace"], "A movie.<br", ["A", "movie", ".<", "br"]),
    (["whitespace_split", "punctuation"], "so great!", ["so", "great", "!"]),
    ([{"punctuation": {"behavior": "removed"}}], "a,b", ["a", "b"]),
    (["digits"], "in2024", ["in", "2024"]),
    ([{"digits": {"individual_digits": True}}], "a12", ["a", "1", "2"]),
    ([{"split": {"pattern": "\\s+", "behavior": "removed"}}], "a  b\tc", ["a", "b", "c"]),
    ([{"split": {"pattern": "\\w+", "behavior": "removed", "invert": True}}], "a, b", ["a", "b"]),
    (["unicode_scripts"], "abc東京", ["abc", "東京"]),
    (["bert"], "don't!", ["don", "'", "t", "!"]),
]


def _name(step) -> str:
    return step if isinstance(step, str) else next(iter(step))


def test_every_step_name_has_a_case():
    assert {_name(step) for step, _, _ in NORMALIZER_CASES} == set(NORMALIZERS)
    assert {_name(step) for listed, _, _ in PRE_TOKENIZER_CASES for step in listed} == set(PRE_TOKENIZERS)


@pytest.mark.parametrize(("step", "text", "expected"), NORMALIZER_CASES, ids=lambda v: _name(v) if v else "")
def test_each_normalizer_does_what_it_says(step, text, expected, tmp_path):
    lowercase = str(_name(step) == "lowercase").lower()
    tok = tokenizer(tmp_path, steps("normalizers", [step]), f"task.tokenizer.lowercase={lowercase}")
    assert tok.normalizer.normalize_str(text) == expected


@pytest.mark.parametrize(("listed", "text", "expected"), PRE_TOKENIZER_CASES, ids=str)
def test_each_pre_tokenizer_does_what_it_says(listed, text, expected, tmp_path):
    tok = tokenizer(tmp_path, steps("pre_tokenizers", listed), "task.tokenizer.lowercase=false")
    assert [word for word, _ in tok.pre_tokenizer.pre_tokenize_str(text)] == expected


def test_raw_review_text_gives_clean_tokens(tmp_path):
    tok = tokenizer(tmp_path, steps("normalizers", ["nfkc", BR, "lowercase"]), steps("pre_tokenizers", ["whitespace"]))
    assert tok.encode(IMDB).tokens == ["a", "movie", ".", "great", "!"]
    before = tokenizer(tmp_path / "before")
    assert "[UNK]" not in tok.encode("Great movie!").tokens and before.encode("Great movie!").tokens == ["[UNK]"] * 2


# ---- lowercase and the lists -------------------------------------------------------------------------------


def _normalizer(tmp_path: Path, *overrides: str) -> dict:
    return json.loads(tokenizer(tmp_path, *overrides).to_str())["normalizer"]


def test_lowercase_true_appends_lowercase_unless_a_step_lowercases(tmp_path):
    assert _normalizer(tmp_path / "a", steps("normalizers", ["nfkc"])) == {
        "type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]}
    assert _normalizer(tmp_path / "b", steps("normalizers", ["lowercase", "nfkc"])) == {
        "type": "Sequence", "normalizers": [{"type": "Lowercase"}, {"type": "NFKC"}]}
    assert _normalizer(tmp_path / "c", steps("normalizers", ["bert"]))["type"] == "BertNormalizer"
    with_bert = _normalizer(tmp_path / "d", steps("normalizers", [{"bert": {"lowercase": False}}]))
    assert [n["type"] for n in with_bert["normalizers"]] == ["BertNormalizer", "Lowercase"]
    assert _normalizer(tmp_path / "e", steps("normalizers", ["nfkc"]), "task.tokenizer.lowercase=false") == {
        "type": "NFKC"}


@pytest.mark.parametrize("listed", [["lowercase"], ["nfc", "bert"]])
def test_a_lowercasing_step_with_lowercase_false_is_refused(listed):
    with pytest.raises(ConfigError, match=r"lowercases the text, but task.tokenizer.lowercase=false"):
        load_config(["task=translation", steps("normalizers", listed)])


# ---- validation: one line, the key, the problem, the fix ---------------------------------------------------

BAD = [
    (steps("normalizers", ["nfck"]), r"^task.tokenizer.normalizers=nfck \(step 1\) is not a normalizer \(did you mean "
                                     r"'nfc'\?\): choose one of nfc, nfd, nfkc"),
    (steps("pre_tokenizers", ["whitespace", "punctuaton"]), r"=punctuaton \(step 2\) is not a pre-tokenizer \(did you "
                                                            r"mean 'punctuation'\?\)"),
    (steps("normalizers", [{"replace": {"patern": "x"}}]), r"has no argument 'patern' \(did you mean 'pattern'\?\): "
                                                           r"it takes pattern, content"),
    (steps("normalizers", ["replace"]), r"replace \(step 1\) needs the argument 'pattern'"),
    (steps("normalizers", [{"replace": {"pattern": "[a"}}]), r"pattern='\[a' is not a valid regex"),
    (steps("normalizers", [{"strip": {"left": 3}}]), r"left=3 must be true or false"),
    (steps("normalizers", [{"nfc": {"form": "c"}}]), r"nfc \(step 1\) has no argument 'form': it takes none"),
    (steps("normalizers", [{"nfc": {}, "nfd": {}}]), r"is not a normalizer name or a one-key mapping"),
    (steps("pre_tokenizers", [{"split": {"pattern": "x", "behavior": "isolate"}}]),
     r"behavior='isolate' must be one of isolated, removed"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[o for o, _ in BAD])
def test_a_bad_step_is_one_line_naming_the_key_the_problem_and_the_fix(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config([override])
    assert "\n" not in str(err.value) and str(err.value).endswith("(set on the command line)")


def test_the_cli_reports_an_unknown_normalizer_without_a_traceback(capsys):
    assert main(["config", steps("normalizers", ["nfck"])]) != 0
    err = capsys.readouterr().err
    assert "did you mean 'nfc'" in err and "Traceback" not in err


def test_steps_validate_in_a_task_file(tmp_path):
    root = tmp_path / "configs"
    shutil.copytree(Path(__file__).parent.parent / "configs", root)
    task = root / "task" / "sentiment.yaml"
    task.write_text(task.read_text().replace("  lowercase: true\n", "  lowercase: true\n  normalizers: [nfkc, "
                                             "{replace: {pattern: \"<br\\\\s*/?>\", content: \" \"}}, lowercas]\n"))
    with pytest.raises(ConfigError, match=r"normalizers=lowercas \(step 3\).*did you mean 'lowercase'.*sentiment.yaml"):
        load_config([], root=root)
    task.write_text(task.read_text().replace("lowercas]", "lowercase]\n  pre_tokenizers: [whitespace]"))
    cfg = load_config([], root=root)
    assert list(cfg.task.tokenizer.normalizers)[1] == BR and list(cfg.task.tokenizer.pre_tokenizers) == ["whitespace"]


# ---- bpe keeps exact detokenisation ------------------------------------------------------------------------

LOSSLESS = [
    ["punctuation"], ["digits"], ["unicode_scripts"], [{"split": {"pattern": "<br\\s*/?>"}}],
    [{"digits": {"individual_digits": True}}, {"punctuation": {"behavior": "contiguous"}}],
    [{"split": {"pattern": "\\w+", "behavior": "merged_with_next", "invert": True}}],
]
SAMPLES = ["Hello, world! 2024 was great.<br />Yes", "a\tb\n c  d (e) -- f...", "ﬁne ＡＢＣ ½ 東京です",
           "Über-Café: 3,50 €"]


@pytest.mark.parametrize("listed", LOSSLESS, ids=str)
def test_bpe_with_lossless_pre_tokenizers_round_trips_exactly(listed, tmp_path):
    tok = tokenizer(tmp_path, "task=translation", "task.tokenizer.vocab_size=300", "task.tokenizer.min_frequency=1",
                    steps("pre_tokenizers", listed), texts=SAMPLES)
    assert json.loads(tok.to_str())["pre_tokenizer"]["pretokenizers"][0] == METASPACE
    for text in SAMPLES + ["unseen Ŧext: ¿qué?"]:
        assert tok.decode(tok.encode(text).ids) == text


def test_every_lossless_pre_tokenizer_is_round_tripped():
    assert {_name(step) for listed in LOSSLESS for step in listed} == {
        name for name, spec in PRE_TOKENIZERS.items() if spec.lossless}


@pytest.mark.parametrize("listed", [["whitespace"], ["whitespace_split"], ["bert"],
                                    [{"punctuation": {"behavior": "removed"}}],
                                    ["digits", {"split": {"pattern": "x", "behavior": "removed"}}]], ids=str)
def test_bpe_refuses_pre_tokenizers_that_drop_characters(listed):
    with pytest.raises(ConfigError, match=r"drops characters, which breaks bpe's exact detokenisation.*list only "
                                          r"punctuation, digits, split, unicode_scripts"):
        load_config(["task=translation", steps("pre_tokenizers", listed)])


def test_bpe_round_trips_the_normalised_real_text(data_dir, tmp_path):
    def texts(split: str, n: int) -> list[str]:
        with gzip.open(data_dir / "translation" / "multi30k_en_de" / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for _, line in zip(range(n), f)]
        return [row[side] for row in rows for side in ("src", "tgt")]

    tok = tokenizer(tmp_path, "task=translation", "task.tokenizer.vocab_size=2000", steps("normalizers", ["nfkc"]),
                    steps("pre_tokenizers", ["punctuation", "digits"]), texts=texts("train", 3000))
    for text in texts("validation", 500):
        assert tok.decode(tok.encode(text).ids) == unicodedata.normalize("NFKC", text)


# ---- the cache key -----------------------------------------------------------------------------------------


def _cached(tmp_path: Path, *overrides: str) -> set[str]:
    tokenizer(tmp_path, *overrides)
    return {p.stem for p in (tmp_path / "tokenizers").glob("*.json")}


def test_the_cache_key_covers_the_steps_in_one_form_per_meaning(tmp_path):
    plain = _cached(tmp_path / "a")
    named = _cached(tmp_path / "b", steps("normalizers", ["nfkc", "strip"]))
    spelled = _cached(tmp_path / "c", steps("normalizers", [{"nfkc": None}, {"strip": {"left": True}}]))
    other = _cached(tmp_path / "d", steps("normalizers", [{"strip": {"left": False}}, "nfkc"]))
    split = _cached(tmp_path / "e", steps("pre_tokenizers", ["whitespace"]))
    assert named == spelled
    assert len(plain | named | other | split) == 4


# ---- whole runs --------------------------------------------------------------------------------------------



def _pipeline(cache: Path) -> tuple[dict, dict]:
    """(normalizer, pre-tokenizer) of the one tokenizer a run trained and cached."""
    (path,) = (cache / "tokenizers").glob("*.json")
    data = json.loads(path.read_text())
    return data["normalizer"], data["pre_tokenizer"]


def test_a_classification_run_with_normalizers_trains(data_dir, tmp_path):
    out = tmp_path / "runs"
    assert main(["run", "task=sentiment", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'cache'}",
                 f"output_dir={out}", steps("normalizers", ["nfkc", BR, "strip_accents"]),
                 steps("pre_tokenizers", ["bert"]), *TINY]) == 0
    record = run_record(out)
    assert record["status"] == "completed", record.get("error")
    assert 0.0 <= record["metrics"]["test"]["accuracy"] <= 1.0
    normalizer, pre_tokenizer = _pipeline(tmp_path / "cache")
    assert [n["type"] for n in normalizer["normalizers"]] == ["NFKC", "Replace", "StripAccents", "Lowercase"]
    assert pre_tokenizer == {"type": "BertPreTokenizer"}


def test_a_wordlevel_translation_run_with_normalizers_trains_and_decodes(data_dir, tmp_path):
    out = tmp_path / "runs"
    assert main(["run", "task=translation", f"data_dir={data_dir}", f"cache_dir={tmp_path / 'cache'}",
                 f"output_dir={out}", "task.tokenizer.kind=wordlevel", "task.tokenizer.vocab_size=800",
                 "task.tokenizer.lowercase=true", steps("normalizers", ["nfkc"]),
                 steps("pre_tokenizers", ["whitespace"]), "task.decoding.val_examples=8", "task.decoding.beam_size=2",
                 *TINY]) == 0
    record = run_record(out)
    assert record["status"] == "completed", record.get("error")
    assert 0.0 <= record["metrics"]["test"]["bleu"] <= 100.0
    rows = [json.loads(line) for line in next(out.glob("*/predictions.jsonl")).read_text().splitlines()]
    assert len(rows) == 32 and all(isinstance(r["prediction"], str) and "[PAD]" not in r["prediction"] for r in rows)
    assert any(r["prediction"] for r in rows)
    # Word-level output is normalised text: lowercase words.
    assert all(r["prediction"] == r["prediction"].lower() for r in rows)
    normalizer, pre_tokenizer = _pipeline(tmp_path / "cache")
    assert [n["type"] for n in normalizer["normalizers"]] == ["NFKC", "Lowercase"]
    assert pre_tokenizer == {"type": "Whitespace"}


def test_an_override_that_is_not_yaml_is_a_one_line_error(capsys):
    """Flow YAML without the space after a colon, or a double-quoted regex escape, is refused with the fix."""
    from attnbench.cli import main

    for raw in ("[{nfc:{}}]", '[{replace: {pattern: "<br\\s*/?>", content: " "}}]'):
        assert main(["config", f"task.tokenizer.normalizers={raw}"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is not valid YAML" in err and "single quotes" in err
