"""What the demo reads: evaluation treebanks, the English probe-training treebank, the
parallel data and dictionaries of the word pairs, and how the sentences are split.

Sources, by option (:class:`alignfreeze.pipeline.DemoConfig`):

- default: the embedded afdemo corpus (``core/fixtures``, written for the project): 100
  parallel sentences in en, fr, de, ru, ar, hi, zh, 150 English training sentences, MUSE-format
  dictionaries of the corpus;
- ``ud_dir``: a UD release folder (or a folder of ``xx_*-ud-split.conllu`` files): per
  language the PUD test file when there is one, else the only test file; the probes'
  English training treebank is ``en_*-ud-train.conllu`` (else ``-dev``), or ``train_treebank``;
- ``pairs`` (``LANG=SPEC``): realignment data of a language, any input of
  :func:`core.parallel.read_parallel` (``SRC,TGT`` files, a TSV, ``hf:DATASET:en-xx``);
- ``dictionary`` (``LANG=FILE`` or a MUSE folder holding ``en-xx.txt`` /
  ``en-xx.0-5000.txt``).

Split. When a language's realignment pairs come from the evaluation treebanks themselves
(the default: the English and the target treebank joined on ``sent_id``), the sentence ids
of the English treebank are split in order: the first ``realign_share`` realign, the rest
are the only sentences measured, in every language. So drift, probes, CKA and retrieval are
never measured on sentences the realignment saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

EMBEDDED_LANGS = ("fr", "de", "ru", "ar", "hi", "zh")
QUICK = {"sentences": 16, "train": 24}  # --quick: parallel sentences (half realign), English training sentences


@dataclass
class Corpus:
    """Resolved inputs. ``eval_sentences[lang]``: the measured sentences (CoNLL-U),
    ``train_sentences``: the English probe-training sentences, ``parallel[lang]``: the
    spec of the realignment data, ``dictionary[lang]``: a MUSE file or None."""

    source: str
    langs: list[str]  # measured languages, "en" first
    eval_files: dict[str, Path]
    eval_sentences: dict
    train_file: Path
    train_sentences: list
    parallel: dict[str, dict] = field(default_factory=dict)
    dictionary: dict[str, Path | None] = field(default_factory=dict)
    realign_ids: list[str] = field(default_factory=list)  # sent_ids kept for realignment (split)
    eval_ids: list[str] = field(default_factory=list)

    def files(self) -> list[Path]:
        """Every local input file (hashed into the step keys and the manifest)."""
        out = [*self.eval_files.values(), self.train_file]
        for spec in self.parallel.values():
            out += [Path(p) for p in spec.get("files", [])]
        out += [p for p in self.dictionary.values() if p is not None]
        return list(dict.fromkeys(out))

    def texts(self) -> list[str]:
        """Running texts of every sentence read (the --quick tokenizer is trained on them)."""
        from core.pieces import surface, surface_text

        sents = [s for ss in self.eval_sentences.values() for s in ss] + list(self.train_sentences)
        return [surface_text(surface(s))[0] for s in sents]


def _assign(specs, what: str) -> dict[str, str]:
    out = {}
    for spec in specs or ():
        lang, eq, value = str(spec).partition("=")
        if not eq or not lang or not value:
            raise ValueError(f"{what} {spec!r}: expected LANG=VALUE (e.g. fr=hf:Helsinki-NLP/opus-100:en-fr)")
        out[lang.strip()] = value.strip()
    return out


def _pick_test(ud_dir: Path, lang: str) -> Path:
    from core.conllu import find_treebanks

    try:
        found = find_treebanks(ud_dir, lang, "test")
    except FileNotFoundError:
        raise FileNotFoundError(f"{ud_dir}: no {lang}_*-ud-test.conllu treebank (language {lang!r})") from None
    pud = [f for f in found if f.name == f"{lang}_pud-ud-test.conllu"]
    if pud:
        return pud[0]
    if len(found) > 1:
        raise ValueError(f"{ud_dir}: {len(found)} {lang} test treebanks ({', '.join(f.name for f in found)}) and no "
                         f"PUD one: keep one {lang}_*-ud-test.conllu in the folder")
    return found[0]


def _pick_train(ud_dir: Path) -> Path:
    from core.conllu import find_treebanks

    for split in ("train", "dev"):
        try:
            return find_treebanks(ud_dir, "en", split)[0]
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"{ud_dir}: no English training treebank (en_*-ud-train.conllu or -dev.conllu); "
                            "name one with --train-treebank")


def _dictionary(lang: str, given: dict[str, str], folder: Path | None, names=("en-{}.txt", "en-{}.0-5000.txt")):
    """``--dictionary LANG=FILE``, else the first of ``names`` (formatted with the language)
    in ``folder``, else None."""
    if lang in given:
        p = Path(given[lang])
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such dictionary file (--dictionary {lang}=...)")
        return p
    if folder is not None:
        for name in names:
            if (folder / name.format(lang)).is_file():
                return folder / name.format(lang)
    return None


def resolve(cfg) -> Corpus:
    """The :class:`Corpus` of a :class:`alignfreeze.pipeline.DemoConfig`; errors name the
    option and the file."""
    from core import FIXTURES
    from core.conllu import read_conllu

    langs = list(cfg.langs)
    if "en" in langs:
        raise ValueError("--langs: English is always measured (the probes' training language); list the others")
    if len(set(langs)) != len(langs) or not langs:
        raise ValueError(f"--langs {' '.join(langs)}: expected distinct language codes")
    if cfg.ud_dir:
        ud = Path(cfg.ud_dir)
        if not ud.is_dir():
            raise FileNotFoundError(f"{ud}: no such folder (--ud-dir: a UD release or a folder of treebanks)")
        files = {lang: _pick_test(ud, lang) for lang in ["en", *langs]}
        train = Path(cfg.train_treebank) if cfg.train_treebank else _pick_train(ud)
        source = f"UD treebanks in {ud}"
        dict_folder = None
        dict_names = ("en-{}.txt", "en-{}.0-5000.txt")
    else:
        missing = [lang for lang in langs if lang not in EMBEDDED_LANGS]
        if missing:
            raise ValueError(f"--langs {' '.join(missing)}: the embedded corpus has {', '.join(EMBEDDED_LANGS)}; "
                             "give --ud-dir for other languages")
        files = {lang: FIXTURES / f"{lang}_afdemo-ud-test.conllu" for lang in ["en", *langs]}
        train = Path(cfg.train_treebank) if cfg.train_treebank else FIXTURES / "en_afdemo-ud-train.conllu"
        source = "the embedded afdemo corpus (core/fixtures, written for alignfreeze)"
        dict_folder = FIXTURES
        # the corpus's own dictionaries: core/fixtures/en-fr.txt is the unit tests' 12-sentence one
        dict_names = ("en-{}.afdemo.txt",)
    if not train.is_file():
        raise FileNotFoundError(f"{train}: no such file (--train-treebank: the English treebank the probes train on)")
    given_dict = _assign([d for d in cfg.dictionary or () if "=" in str(d)], "--dictionary")
    for lang, value in list(given_dict.items()):
        if Path(value).is_dir():  # LANG=FOLDER is odd; a bare folder is given as --dictionary DIR
            raise ValueError(f"--dictionary {lang}={value}: a folder; give a file, or the folder alone")
    folders = [Path(s) for s in cfg.dictionary or () if "=" not in str(s)]
    if folders:
        if len(folders) > 1 or not folders[0].is_dir():
            raise ValueError(f"--dictionary {folders[0]}: expected one MUSE folder or LANG=FILE entries")
        dict_folder = folders[0]
        dict_names = ("en-{}.txt", "en-{}.0-5000.txt")
    given_pairs = _assign(cfg.pairs or (), "--pairs")
    unknown = sorted(set(given_pairs) - set(langs))
    if unknown:
        raise ValueError(f"--pairs {unknown[0]}=...: {unknown[0]!r} is not among --langs ({' '.join(langs)})")

    n_par = QUICK["sentences"] if cfg.quick else (cfg.max_sentences or None)
    n_train = QUICK["train"] if cfg.quick else cfg.max_train
    sents = {lang: list(read_conllu(f)) for lang, f in files.items()}
    train_sents = list(read_conllu(train))[:n_train]

    parallel, dictionary = {}, {}
    split_needed = False
    for lang in langs:
        dictionary[lang] = _dictionary(lang, given_dict, dict_folder, dict_names)
        if lang in given_pairs:
            spec = given_pairs[lang]
            if spec.startswith("hf:"):
                parallel[lang] = {"spec": spec, "src": spec, "tgt": None, "files": []}
            else:
                parts = spec.split(",")
                if len(parts) > 2:
                    raise ValueError(f"--pairs {lang}={spec}: expected SRC,TGT files, one TSV, or hf:DATASET:en-{lang}")
                for p in parts:
                    if not Path(p).is_file():
                        raise FileNotFoundError(f"{p}: no such parallel file (--pairs {lang}=...)")
                parallel[lang] = {"spec": spec, "src": parts[0], "tgt": parts[1] if len(parts) == 2 else None,
                                  "files": parts}
        else:
            split_needed = True
            parallel[lang] = {"spec": "eval treebanks", "src": str(files["en"]), "tgt": str(files[lang]),
                              "files": [str(files["en"]), str(files[lang])]}
        if cfg.aligner == "dictionary" and dictionary[lang] is None:
            raise ValueError(f"no dictionary for en-{lang}: give --dictionary {lang}=FILE or a MUSE folder "
                             "(en-xx.txt), or --aligner eflomal / similarity")

    ids = [s.sent_id for s in sents["en"]][:n_par]
    realign_ids: list[str] = []
    if split_needed:
        if not 0 < cfg.realign_share < 1:
            raise ValueError(f"--realign-share {cfg.realign_share}: expected a share strictly between 0 and 1")
        k = int(round(len(ids) * cfg.realign_share))
        if k < 2 or len(ids) - k < 2:
            raise ValueError(f"{files['en']}: {len(ids)} sentences cannot be split into realignment and "
                             f"measured sentences (--realign-share {cfg.realign_share})")
        realign_ids, ids = ids[:k], ids[k:]
    keep = set(ids)
    eval_sents = {}
    for lang, ss in sents.items():
        chosen = [s for s in ss if s.sent_id in keep] if split_needed or n_par else ss
        if not chosen:
            raise ValueError(f"{files[lang]}: none of the measured sentence ids ({ids[0]} ...) is in this treebank; "
                             "the evaluation treebanks must be parallel (same sent_id)")
        eval_sents[lang] = chosen
    return Corpus(source, ["en", *langs], files, eval_sents, train, train_sents, parallel, dictionary,
                  realign_ids, ids)
