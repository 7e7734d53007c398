"""Running text through parallel data and word pairs (issue 9.1 on the parallel paths).

Chinese and Thai are written without spaces between words; a model never saw "北京 是 中国".
For a pair of parallel CoNLL-U sentences (tests/data/*_rt-ud-test.conllu, sentences written
for these tests, ``SpaceAfter=No`` between the Chinese and Thai words), the pieces the model
sees in realignment, align-eval, the similarity aligner, the layer scan and the translation
probe must be those of the running text (the ``# text``), with e5-small's real tokenizer.
Plain-text and TSV lines are running text as written.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from core import prepared
from core.conllu import read_conllu
from core.encoding import encode_texts, encode_windows, encode_words, surface_text, text_surface
from core.parallel import ParallelPair, read_parallel
from core.wordpairs import pair_record, read_pairs, side, write_pairs

DATA = Path(__file__).parent / "data"
EN, ZH, TH = (DATA / f"{lang}_rt-ud-test.conllu" for lang in ("en", "zh", "th"))
TEXTS = {lang: {s.sent_id: s.text for s in read_conllu(f)} for lang, f in (("en", EN), ("zh", ZH), ("th", TH))}


def _tokenizer(name: str):
    from core.models import load_tokenizer

    if not prepared.is_prepared(name):
        pytest.skip(f"{name} is not prepared here ({prepared.INSTALL_HINT})")
    return load_tokenizer(name, offline=True)


@pytest.fixture(scope="module")
def e5():
    """e5-small's tokenizer (XLM-R Unigram) and tiny random models of its vocabulary."""
    from transformers import AutoModel

    from core.tiny import tiny_config

    tok = _tokenizer("e5-small")
    torch.manual_seed(0)
    models = {}
    for family in ("bert", "llama"):
        models[family] = AutoModel.from_config(tiny_config(family, len(tok), pad_token_id=tok.pad_token_id)).eval()
    # the fixture is sensitive: running text and words joined by spaces give other pieces
    for lang in ("zh", "th"):
        for sid, text in TEXTS[lang].items():
            words = next(s.tokens for s in read_conllu(DATA / f"{lang}_rt-ud-test.conllu") if s.sent_id == sid)
            assert tok(text)["input_ids"] != tok(" ".join(words))["input_ids"], (lang, sid)
    return tok, models


@contextmanager
def fed(model):
    """Every row of input ids the model is called with (padding dropped by the attention mask)."""
    rows: list[tuple[int, ...]] = []

    def hook(_mod, args, kwargs):
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        mask = kwargs.get("attention_mask")
        for r in range(ids.shape[0]):
            keep = mask[r].bool() if mask is not None else torch.ones_like(ids[r], dtype=torch.bool)
            rows.append(tuple(ids[r][keep].tolist()))

    h = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield rows
    finally:
        h.remove()


def expected(tok, *langs_ids) -> Counter:
    """Pieces of the running texts ``(lang, sent_id)``, specials included, as a multiset of rows."""
    return Counter(tuple(tok(TEXTS[lang][sid])["input_ids"]) for lang, sid in langs_ids)


def _both(pairs, lang):
    return [("en", p.id) for p in pairs] + [(lang, p.id) for p in pairs]


# ----------------------------------------------------------------------------- readers
@pytest.mark.parametrize("lang", ["zh", "th"])
def test_conllu_parallel_sides_are_words_with_their_running_text(lang):
    pairs = read_parallel(EN, DATA / f"{lang}_rt-ud-test.conllu")
    tokens = {s.sent_id: s.tokens for s in read_conllu(DATA / f"{lang}_rt-ud-test.conllu")}
    assert len(pairs) == 5
    for p in pairs:
        assert p.tgt.words == tokens[p.id]  # what the word aligners and the links index
        assert surface_text(p.tgt)[0] == TEXTS[lang][p.id]  # what the model reads
        assert surface_text(p.src)[0] == TEXTS["en"][p.id]  # "China." with no space before the stop
    with pytest.raises(TypeError):
        list(pairs[0].src)  # a side is not a word list: its spacing cannot be dropped by accident


def test_plain_text_and_tsv_lines_are_kept_as_written(tmp_path):
    """Two spaces, a tab, an ideographic space: the model reads the line, not its words
    re-joined by single spaces (byte-level BPE sees the difference)."""
    tok = _tokenizer("smollm2-135m")
    src_lines = ["The  cat sleeps.", "  We\teat rice.  ", "北京\u3000是 首都"]
    tgt_lines = ["Le chat dort.", "Nous mangeons du riz.", "Beijing is the capital"]
    a, b, t = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "p.tsv"
    a.write_text("\n".join(src_lines) + "\n", encoding="utf-8")
    b.write_text("\n".join(tgt_lines) + "\n", encoding="utf-8")
    tsv_lines = [x.replace("\t", "   ") for x in src_lines]  # a TSV side holds no tab
    t.write_text("".join(f"{x}\t{y}\n" for x, y in zip(tsv_lines, tgt_lines)), encoding="utf-8")
    for pairs, lines in ((read_parallel(a, b), src_lines), (read_parallel(t), tsv_lines)):
        for p, line in zip(pairs, lines):
            assert surface_text(p.src)[0] == line.strip()  # leading/trailing whitespace dropped only
            assert p.src.words == line.split()
        batch = encode_words(tok, [p.src for p in pairs])
        for r, line in enumerate(lines):
            fed_ids = batch.input_ids[r][batch.attention_mask[r].bool()].tolist()
            assert fed_ids == tok(line.strip())["input_ids"]
            assert fed_ids != tok(" ".join(line.split()))["input_ids"]
        assert batch.n_words == [len(line.split()) for line in lines]


def test_windows_of_a_text_as_written_are_slices_of_it():
    tok = _tokenizer("smollm2-135m")
    text = "  ".join(["The cat sleeps on the\tchair."] * 8)
    wins = encode_windows(tok, [text_surface(text)], max_length=16)
    assert len(wins) > 2
    sf = text_surface(text)
    _, starts = surface_text(sf)
    for w in wins:
        a, b = starts[w.start], starts[w.end - 1] + len(sf.words[w.end - 1])
        assert w.input_ids.tolist() == tok(text[a:b])["input_ids"]  # the double spaces and tabs inside


def test_text_surface_refuses_words_that_are_not_the_text():
    assert text_surface("北京是首都。", ["北京", "是", "首都", "。"]).space_after == [False, False, False, True]
    assert text_surface("a  b\tc").space_after == [True, True, True]
    with pytest.raises(ValueError, match="word 1 '是' is not at character 3"):
        text_surface("北京 不是首都", ["北京", "是", "首都"])
    with pytest.raises(ValueError, match="goes on after its last word"):
        text_surface("北京是首都。", ["北京", "是", "首都"])


# ----------------------------------------------------------------------------- word pairs
def test_pairs_records_carry_the_running_text(tmp_path, capsys):
    from alignfreeze.cli import main

    out = tmp_path / "en-zh.jsonl"
    assert main(["pairs", "--src", str(EN), "--tgt", str(ZH), "--aligner", "dictionary",
                 "--dictionary", str(DATA / "en-zh_rt.txt"), "--out", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 5
    for rec in lines:
        assert rec["src_text"] == TEXTS["en"][rec["id"]] and rec["tgt_text"] == TEXTS["zh"][rec["id"]]
        assert surface_text(side(rec, "tgt"))[0] == TEXTS["zh"][rec["id"]]
    recs = read_pairs(out)
    assert "no src_text" not in capsys.readouterr().err
    assert [r["tgt_text"] for r in recs] == [r["tgt_text"] for r in lines]
    by_id = {r["id"]: r for r in recs}
    assert [[by_id["rt-1"]["src"][i], by_id["rt-1"]["tgt"][j]] for i, j in by_id["rt-1"]["links"]] == \
        [["Beijing", "北京"], ["capital", "首都"], ["China", "中国"]]


def test_old_records_without_text_read_as_space_joined_and_say_so(tmp_path, capsys):
    p = tmp_path / "old.jsonl"
    p.write_text(json.dumps({"id": "a", "src": ["北京", "是"], "tgt": ["Beijing", "is"], "links": [[0, 0]]},
                            ensure_ascii=False) + "\n", encoding="utf-8")
    rec = read_pairs(p)[0]
    assert surface_text(side(rec, "src"))[0] == "北京 是"
    err = capsys.readouterr().err
    assert f"{p}: 1 of 1 record(s) have no src_text/tgt_text" in err and "single spaces" in err


def test_bad_running_text_in_a_record_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    good = {"id": "a", "src": ["北京", "是"], "tgt": ["x"], "links": [[0, 0]], "src_text": "北京是", "tgt_text": "x"}
    p.write_text(json.dumps(good, ensure_ascii=False) + "\n"
                 + json.dumps({**good, "src_text": "上海是"}, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{p}:2: 'src_text' does not hold the words of 'src': word 0 '北京'"):
        read_pairs(p)
    p.write_text(json.dumps({**good, "tgt_text": 3}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{p}:1: 'tgt_text' must be a string"):
        read_pairs(p)
    rec = pair_record("b", text_surface("北京是", ["北京", "是"]), text_surface("x"), [[0, 0]])
    assert write_pairs(tmp_path / "ok.jsonl", [rec]) and read_pairs(tmp_path / "ok.jsonl") == [rec]


# ----------------------------------------------------------------------------- what the model sees
@pytest.fixture(scope="module")
def zh_pairs_file(tmp_path_factory):
    from realign.pairs import extract_pairs

    recs, _ = extract_pairs(read_parallel(EN, ZH), "dictionary", dictionary=DATA / "en-zh_rt.txt", progress=False)
    return write_pairs(tmp_path_factory.mktemp("rt") / "en-zh.jsonl", recs)


def test_realignment_reads_the_running_text(e5, zh_pairs_file):
    from realign.losses import realignment_loss

    tok, models = e5
    recs = read_pairs(zh_pairs_file)
    for loss in ("word_infonce", "sentence_infonce"):
        cfg = type("C", (), dict(layers="last", loss=loss, temperature=0.1, negatives="strong", candidates="all",
                                 pooling="first", max_length=96, reg_weight=0.0))()
        with fed(models["bert"]) as rows, torch.no_grad():
            _, parts = realignment_loss(models["bert"], tok, recs, cfg)
        assert Counter(rows) == expected(tok, *[("en", r["id"]) for r in recs], *[("zh", r["id"]) for r in recs])
    assert parts["windowed"] == 0


def test_align_eval_reads_the_running_text(e5, zh_pairs_file):
    from analysis.alignment import align_eval, read_pairs_jsonl
    from core.features import WordFeatureExtractor

    tok, models = e5
    pairs = read_parallel(EN, ZH)
    linked = read_pairs_jsonl(zh_pairs_file)
    ex = WordFeatureExtractor(models["bert"], tok, layers="last", progress=False)
    with fed(models["bert"]) as rows:
        out = align_eval(ex, sentence_pairs=pairs, linked_pairs=linked, csls_k=2)
    assert Counter(rows) == expected(tok, *_both(pairs, "zh"), *_both(linked, "zh"))
    assert {r["n"] for r in out if r["task"] == "word"} == {sum(len(p.links) for p in linked)}


def test_similarity_aligner_reads_the_running_text(e5):
    from realign.aligners import similarity_links

    tok, models = e5
    pairs = read_parallel(EN, TH)
    with fed(models["bert"]) as rows:
        links = similarity_links([(p.src, p.tgt) for p in pairs], models["bert"], tok, layer=1, progress=False)
    assert Counter(rows) == expected(tok, *_both(pairs, "th"))
    for p, lk in zip(pairs, links):  # links index the CoNLL-U words, not the pieces
        assert lk is None or all(i < len(p.src) and j < len(p.tgt) for i, j in lk)


@pytest.mark.parametrize("lang", ["zh", "th"])
def test_layer_scan_reads_the_running_text(e5, lang):
    from analysis.layer_scan import layer_scan

    tok, models = e5
    pairs = read_parallel(EN, DATA / f"{lang}_rt-ud-test.conllu")
    with fed(models["llama"]) as rows:
        scan, info = layer_scan(models["llama"], tok, [p.src for p in pairs], [p.tgt for p in pairs], batch_size=3)
    assert Counter(rows) == expected(tok, *_both(pairs, lang))
    assert info["encoding"]["sentences"] == 10 and info["encoding"]["windowed"] == 0
    assert {r["n"] for r in scan} == {5}


def test_translation_probe_reads_the_running_text(e5):
    from probing.run import ProbeConfig, run_probe

    tok, models = e5
    cfg = ProbeConfig(model="tiny-e5", task="translation", train=str(EN), eval=(str(ZH), str(TH)), layers="last",
                      seeds=1)
    with fed(models["bert"]) as rows:
        df, _ = run_probe(cfg, model=models["bert"], tokenizer=tok, progress=False)
    ids = list(TEXTS["en"])
    assert Counter(rows) == expected(tok, *[(lang, i) for lang in ("en", "zh", "th") for i in ids])
    assert set(df["lang"]) == {"zh", "th"} and set(df["n"]) == {5}


def test_midalign_loss_reads_the_running_text(e5):
    from realign.midalign.loss import alignment_loss

    tok, models = e5
    pairs = read_parallel(EN, ZH)
    with fed(models["llama"]) as rows, torch.no_grad():
        loss, parts = alignment_loss(models["llama"], tok, [p.src for p in pairs], [p.tgt for p in pairs], 1)
    assert Counter(rows) == expected(tok, *_both(pairs, "zh"))
    assert torch.isfinite(loss) and parts["windows"] == 10


def test_list_sides_are_words_joined_by_single_spaces(e5):
    tok, _ = e5
    p = ParallelPair("x", ["北京", "是"], text_surface("Beijing  is"))
    batch = encode_texts(tok, [p.src, p.tgt])
    assert batch.input_ids[0][batch.attention_mask[0].bool()].tolist() == tok("北京 是")["input_ids"]
    assert batch.input_ids[1][batch.attention_mask[1].bool()].tolist() == tok("Beijing  is")["input_ids"]
    with pytest.raises(TypeError, match="not a str"):
        ParallelPair("x", "北京是", ["a"])
