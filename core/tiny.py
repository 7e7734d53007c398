"""Tiny random models of every supported family with a tokenizer trained on the spot.

No download: a WordPiece (encoders) or BPE (decoders) vocabulary is trained with the
``tokenizers`` package on the given texts and wrapped as a ``PreTrainedTokenizerFast``.
Used by tests, the offline demo fallback and examples (hidden 32, 2 layers by default).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

from .conllu import read_conllu

FAMILIES = ("bert", "xlm-roberta", "distilbert", "gpt2", "llama", "qwen2")


TINY_TEXT_FILES = ("de_demo-ud-test.conllu", "en_demo-ud-test.conllu", "fr_demo-ud-test.conllu")
"""The fixed training text of the tiny tokenizers: the 12 German, English and French
sentences of the unit tests' subset (``core/fixtures/README.md``), in this order. Not every
fixture: the demo corpus's Cyrillic, Arabic, Devanagari and Chinese letters alone would
fill most of a 400-piece vocabulary, and every tiny model's tokenisation would change."""


def fixture_texts() -> list[str]:
    """The tiny tokenizers' training text: the sentences of :data:`TINY_TEXT_FILES`,
    surface tokens joined by spaces (36 sentences, Latin script only)."""
    from . import FIXTURES

    texts = []
    for name in TINY_TEXT_FILES:
        texts.extend(" ".join(s.tokens) for s in read_conllu(FIXTURES / name))
    return texts


def train_tokenizer(texts: Iterable[str], family: str = "bert", vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A fast tokenizer whose specials match ``family`` (BERT-style, RoBERTa-style or BPE)."""
    texts = list(texts)
    if family in ("bert", "distilbert"):
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False))
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
        )
        tok.decoder = decoders.WordPiece()
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
        )
    if family == "xlm-roberta":
        tok = Tokenizer(models.WordPiece(unk_token="<unk>", continuing_subword_prefix="##"))
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False))
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
            pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>", model_max_length=64,
        )
    if family in ("gpt2", "llama", "qwen2"):
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        specials = ["<unk>", "<pad>", "<eos>"]
        tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False))
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>", model_max_length=64,
        )
    raise ValueError(f"unknown family {family!r}: expected one of {', '.join(FAMILIES)}")


def tiny_config(family: str, vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 2,
                max_positions: int = 64, pad_token_id: int = 0):
    from transformers import (
        BertConfig,
        DistilBertConfig,
        GPT2Config,
        LlamaConfig,
        Qwen2Config,
        XLMRobertaConfig,
    )

    common = dict(vocab_size=vocab_size, pad_token_id=pad_token_id)
    if family == "bert":
        return BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=hidden * 2, max_position_embeddings=max_positions, **common)
    if family == "xlm-roberta":
        return XLMRobertaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                intermediate_size=hidden * 2, max_position_embeddings=max_positions + 2,
                                **common)
    if family == "distilbert":
        return DistilBertConfig(dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=hidden * 2,
                                max_position_embeddings=max_positions, **common)
    if family == "gpt2":
        return GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=max_positions,
                          bos_token_id=pad_token_id, eos_token_id=pad_token_id, **common)
    if family in ("llama", "qwen2"):
        cls = LlamaConfig if family == "llama" else Qwen2Config
        return cls(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                   num_key_value_heads=heads, intermediate_size=hidden * 2,
                   max_position_embeddings=max_positions, **common)
    raise ValueError(f"unknown family {family!r}: expected one of {', '.join(FAMILIES)}")


def tiny_model(family: str = "bert", texts: Iterable[str] | None = None, *, task: str = "base",
               seed: int = 0, num_labels: int = 17, **config_kwargs):
    """``(model, tokenizer)``: a random tiny model of ``family`` and a tokenizer trained on
    ``texts`` (default: :func:`fixture_texts`)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForTokenClassification

    tok = train_tokenizer(texts if texts is not None else fixture_texts(), family)
    cfg = tiny_config(family, len(tok), pad_token_id=tok.pad_token_id, **config_kwargs)
    torch.manual_seed(seed)
    if task == "base":
        model = AutoModel.from_config(cfg)
    elif task == "token-classification":
        cfg.num_labels = num_labels
        model = AutoModelForTokenClassification.from_config(cfg)
    elif task == "causal-lm":
        model = AutoModelForCausalLM.from_config(cfg)
    else:
        raise ValueError(f"unknown task {task!r}")
    model.eval()
    return model, tok
