"""Tiny random BERT checkpoints with a WordPiece vocabulary written here (no hub).

Used by the ColBERT and SPLADE parity tests, and runnable as a script by an interpreter
that has PyLate (``tests/plugins/pylate_reference.py`` imports it by path), so both sides
build the same files. Needs torch, transformers and tokenizers.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

WORDS = ("the a of and to in is on for with by at from as be are was this that it late "
         "interaction model query document token vector search fast sparse dense score rank "
         "text word retrieval index engine learned expansion mask cell protein gene study "
         "result effect patient cancer high low").split()
PIECES = ("##s ##ing ##ed ##er ##ly ##al ##ion re un pre ##trie ##val").split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"]


def vocabulary() -> list[str]:
    """Specials, most punctuation (``^`` and ``~`` left out, so PyLate's skiplist meets
    unknown words), words, word pieces, letters and digits."""
    punctuation = [c for c in string.punctuation if c not in "^~"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789")
    words = SPECIALS + punctuation + WORDS + PIECES + letters + ["##" + c for c in letters]
    return list(dict.fromkeys(words))  # "a" is a word and a letter: ids stay contiguous


def write_tokenizer(folder: Path, added: tuple[str, ...] = ()) -> int:
    """A BERT-style fast tokenizer (lowercasing WordPiece, [CLS] $A [SEP]) with ``added``
    tokens appended, as PyLate adds its markers; returns its size."""
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    if added:
        tok.add_tokens(list(added))
    fast = tf.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return int(tok.get_vocab_size())


def bert_config(vocab_size: int, seed_extra: int = 0) -> object:
    import transformers as tf

    return tf.BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64, hidden_act="gelu")


def _jitter(model: object, seed: int) -> None:
    """Random, non-trivial LayerNorm and bias values (transformers initialises them 1/0)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # type: ignore[attr-defined]
            if "norm" in name.lower() or name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def tiny_bert(folder: Path, *, seed: int = 7, masked_lm: bool = False,
              added: tuple[str, ...] = ()) -> Path:
    """A 2-layer, 32-wide random BERT (``BertForMaskedLM`` with ``masked_lm``) + tokenizer."""
    import torch
    import transformers as tf

    size = write_tokenizer(folder, added)
    torch.manual_seed(seed)
    config = bert_config(size)
    model = (tf.BertForMaskedLM if masked_lm else tf.BertModel)(config).eval()
    _jitter(model, seed)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def stanford_colbert(folder: Path, *, dim: int = 16, seed: int = 11, query_maxlen: int = 12,
                     doc_maxlen: int = 20) -> Path:
    """A Stanford-NLP ColBERT checkpoint: ``HF_ColBERT`` config, ``bert.*`` + ``linear.weight``
    in one safetensors file, ``artifact.metadata`` with markers and lengths."""
    import json

    import torch
    from safetensors.torch import save_file

    base = tiny_bert(folder / "_base", seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import load_file

    tensors = {f"bert.{k}": v for k, v in load_file(str(base / "model.safetensors")).items()}
    gen = torch.Generator().manual_seed(seed + 1)
    tensors["linear.weight"] = torch.randn((dim, 32), generator=gen) * 0.2
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((base / "config.json").read_text())
    config["architectures"] = ["HF_ColBERT"]
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt"):
        if (base / name).is_file():
            (folder / name).write_bytes((base / name).read_bytes())
    metadata = {"query_token_id": "[unused0]", "doc_token_id": "[unused1]",
                "query_maxlen": query_maxlen, "doc_maxlen": doc_maxlen, "dim": dim,
                "attend_to_mask_tokens": False, "mask_punctuation": True, "similarity": "cosine"}
    (folder / "artifact.metadata").write_text(json.dumps(metadata, indent=2))
    import shutil

    shutil.rmtree(base)
    return folder


def pylate_layout(folder: Path, *, dim: int = 16, seed: int = 5, bias: bool = False,
                  **settings: object) -> Path:
    """A checkpoint laid out as PyLate saves one, written without PyLate: the transformer at
    the root with ``[Q] ``/``[D] `` added to its vocabulary, ``config_sentence_transformers.json``
    (``model_type`` ColBERT and ``settings``) and a ``1_Dense`` projection."""
    import json
    import string

    import torch
    from safetensors.torch import save_file

    tiny_bert(folder, seed=seed, added=("[Q] ", "[D] "))
    config = {"model_type": "ColBERT", "prompts": {"query": "", "document": ""},
              "default_prompt_name": None, "similarity_fn_name": "MaxSim",
              "query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 12,
              "document_length": 20, "attend_to_expansion_tokens": False,
              "skiplist_words": list(string.punctuation), "do_query_expansion": True,
              **settings}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config, indent=2))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    dense = folder / "1_Dense"
    dense.mkdir()
    (dense / "config.json").write_text(json.dumps({
        "in_features": 32, "out_features": dim, "bias": bias,
        "activation_function": "torch.nn.modules.linear.Identity", "use_residual": False}))
    gen = torch.Generator().manual_seed(seed + 1)
    tensors = {"linear.weight": torch.randn((dim, 32), generator=gen) * 0.2}
    if bias:
        tensors["linear.bias"] = torch.randn((dim,), generator=gen) * 0.1
    save_file(tensors, str(dense / "model.safetensors"), metadata={"format": "pt"})
    return folder


def splade_checkpoint(folder: Path, *, pooling: str = "max", activation: str = "relu",
                      seed: int = 3) -> Path:
    """A sentence-transformers ``SparseEncoder`` (masked LM + ``SpladePooling``) saved."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling

    mlm = tiny_bert(folder.with_name(folder.name + "-mlm"), seed=seed, masked_lm=True)
    model = SparseEncoder(modules=[MLMTransformer(str(mlm)),
                                   SpladePooling(pooling, activation_function=activation)],
                          device="cpu")
    model.save(str(folder))
    return folder


def inference_free_checkpoint(folder: Path, *, seed: int = 4) -> Path:
    """A ``SparseEncoder`` whose ``Router`` weighs queries from a static table (random,
    half of it zero) and runs documents through a masked LM: OpenSearch's layout."""
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.models import Router
    from sentence_transformers.sparse_encoder.models import (
        MLMTransformer,
        SparseStaticEmbedding,
        SpladePooling,
    )

    mlm = MLMTransformer(str(tiny_bert(folder.with_name(folder.name + "-mlm"), seed=seed,
                                       masked_lm=True)))
    size = len(mlm.tokenizer.get_vocab())
    gen = torch.Generator().manual_seed(seed)
    weight = torch.rand(size, generator=gen) * 3 * (torch.rand(size, generator=gen) > 0.5)
    static = SparseStaticEmbedding(tokenizer=mlm.tokenizer, weight=weight, frozen=True)
    router = Router.for_query_document(query_modules=[static],
                                       document_modules=[mlm, SpladePooling("max")])
    SparseEncoder(modules=[router], device="cpu").save(str(folder))
    return folder


def opensearch_layout(folder: Path, *, seed: int = 6) -> Path:
    """A masked LM with ``idf.json`` beside it (OpenSearch's pre-sentence-transformers form)."""
    import json

    tiny_bert(folder, seed=seed, masked_lm=True)
    words = vocabulary()
    idf = {w: round(0.5 + (i * 7919 % 97) / 31, 4) for i, w in enumerate(words) if i % 3}
    (folder / "idf.json").write_text(json.dumps(idf))
    return folder


def masked_lm(folder: Path, family: str, *, seed: int = 8) -> Path:
    """A tiny random masked LM of ``family`` (``distilbert``, ``roberta``, ``modernbert``)
    with this module's tokenizer, for the sparse head of each family."""
    import torch
    import transformers as tf

    size = write_tokenizer(folder)
    torch.manual_seed(seed)
    if family == "distilbert":
        model: Any = tf.DistilBertForMaskedLM(tf.DistilBertConfig(
            vocab_size=size, dim=32, hidden_dim=64, n_layers=2, n_heads=2,
            max_position_embeddings=64))
    elif family == "roberta":
        model = tf.RobertaForMaskedLM(tf.RobertaConfig(
            vocab_size=size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
            pad_token_id=0, bos_token_id=2, eos_token_id=3))
    else:
        model = tf.ModernBertForMaskedLM(tf.ModernBertConfig(
            vocab_size=size, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=64, local_attention=8,
            global_attn_every_n_layers=2, pad_token_id=0, cls_token_id=2, sep_token_id=3,
            bos_token_id=2, eos_token_id=3, norm_bias=True))
    model.eval()
    _jitter(model, seed)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder
