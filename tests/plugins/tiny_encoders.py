"""Tiny random-weight ModernBERT and DistilBERT folders, built with transformers (no hub).

Shared by the ModernBERT/DistilBERT tests and ``benchmarks/modernbert.py``. The folders are
laid out like a sentence-transformers snapshot (``modules.json``, ``1_Pooling``,
``config_sentence_transformers.json``) and carry MiniLM's tokenizer (vocab 30522), so
trawl and the reference libraries read the same files. Needs torch + transformers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def _tokenizer_files(folder: Path) -> None:
    from trawl_onnx.sources import resolve_model_folder

    src = resolve_model_folder("all-MiniLM-L6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt"):
        shutil.copyfile(src / name, folder / name)


def sentence_transformers_layout(folder: Path, *, pooling: str = "mean", normalize: bool = True,
                                 prompts: dict[str, str] | None = None,
                                 default_prompt_name: str | None = None,
                                 max_seq_length: int = 256) -> Path:
    """Write the sentence-transformers files of ``folder`` (Transformer, Pooling[, Normalize])."""
    config = json.loads((folder / "config.json").read_text())
    hidden = config.get("hidden_size") or config["dim"]
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    legacy = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens",
              "max": "pooling_mode_max_tokens", "lasttoken": "pooling_mode_lasttoken"}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({  # the older hub form
        "word_embedding_dimension": hidden, **{key: mode == pooling
                                               for mode, key in legacy.items()}}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": prompts or {}, "default_prompt_name": default_prompt_name,
         "similarity_fn_name": "cosine"}))
    return folder


def _perturb(model: Any) -> None:
    """Random, non-trivial norm weights and biases (initialisation leaves them 1 and 0), and
    query/key weights scaled up so attention is peaked, not near uniform (positions and
    windows then change the states well above float error)."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
            elif name.endswith(("Wqkv.weight", "q_lin.weight", "k_lin.weight")):
                p.mul_(6.0)


def tiny_modernbert(folder: Path, *, classifier: bool = False, hidden: int = 64,
                    layers: int = 4, heads: int = 4, intermediate: int = 96,
                    local_attention: int = 8, seed: int = 7, legacy_config: bool = False,
                    **config: Any) -> Path:
    """A random ModernBERT: every other layer global, an 8-token local window (so the
    window matters on short inputs), non-default rope thetas and biased norms.

    ``legacy_config`` rewrites ``config.json`` in the original form (transformers 4.x:
    ``global_attn_every_n_layers``, ``global_rope_theta``, ``local_rope_theta``)."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    settings: dict[str, Any] = dict(
        vocab_size=30522, hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=512,
        local_attention=local_attention, global_attn_every_n_layers=2, pad_token_id=0,
        cls_token_id=101, sep_token_id=102, bos_token_id=101, eos_token_id=102, num_labels=3,
        norm_bias=True, global_rope_theta=40_000.0, local_rope_theta=2_000.0)
    settings.update(config)
    cls = tf.ModernBertForSequenceClassification if classifier else tf.ModernBertModel
    model = cls(tf.ModernBertConfig(**settings)).eval()
    _perturb(model)
    model.save_pretrained(folder, safe_serialization=True)
    if legacy_config:
        path = folder / "config.json"
        raw = json.loads(path.read_text())
        raw.pop("layer_types", None)
        rope = raw.pop("rope_parameters")
        raw["global_rope_theta"] = rope["full_attention"]["rope_theta"]
        raw["local_rope_theta"] = rope["sliding_attention"]["rope_theta"]
        raw["global_attn_every_n_layers"] = settings["global_attn_every_n_layers"]
        path.write_text(json.dumps(raw))
    _tokenizer_files(folder)
    return folder


def tiny_distilbert(folder: Path, *, classifier: bool = False, seed: int = 7) -> Path:
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    config = tf.DistilBertConfig(vocab_size=30522, dim=64, hidden_dim=128, n_layers=2, n_heads=4,
                                 max_position_embeddings=512, num_labels=3)
    cls = tf.DistilBertForSequenceClassification if classifier else tf.DistilBertModel
    model = cls(config).eval()
    _perturb(model)
    model.save_pretrained(folder, safe_serialization=True)
    _tokenizer_files(folder)
    return folder
