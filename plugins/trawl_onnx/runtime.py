"""An exported model at run time: verified files, fast tokenizer, onnxruntime session.

Imported only when an ONNX component is built (it imports onnxruntime and tokenizers).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from trawl.errors import ConfigError, InputError, ModelSourceError

from .manifest import Manifest, load_manifest

IntArray = npt.NDArray[np.int64]
# Characters kept before tokenising: far more than any window needs, bounded memory/time.
CHARS_PER_TOKEN_CAP = 64


def check_texts(texts: Sequence[Any], what: str = "text") -> list[str]:
    """Validate inputs: ``str`` (or UTF-8 ``bytes``), no unpaired surrogates."""
    if isinstance(texts, str | bytes):
        raise InputError(f"expected a list of {what}s, got a single {type(texts).__name__}")
    out: list[str] = []
    for i, text in enumerate(texts):
        if isinstance(text, bytes | bytearray):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{what} {i} is not valid UTF-8 ({exc.reason} at byte "
                                 f"{exc.start}); decode it with the right encoding first") from exc
        if not isinstance(text, str):
            raise InputError(f"{what} {i} is {type(text).__name__}, expected str")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"{what} {i} holds unpaired surrogates at position {exc.start} (non-UTF-8 bytes "
                "decoded with surrogateescape?); clean or re-decode it") from exc
        out.append(text)
    return out


DEVICE_PROVIDERS = {"cpu": ["CPUExecutionProvider"],
                    # CPU after CUDA: onnxruntime runs the few ops CUDA lacks there
                    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


class ExecutionProviderError(ConfigError):
    """The execution provider a device or config names is not in this onnxruntime build."""


def session_providers(device: str, providers: Sequence[str] | None, owner: str,
                      available: Sequence[str]) -> list[str]:
    """The providers a session gets: ``providers`` if given, else the device's. A GPU is
    used only when its provider is available; otherwise a typed error names it."""
    if providers:
        if device != "cpu":
            raise ConfigError(f"{owner}: set either field 'device' ({device!r}) or field "
                              f"'providers' ({list(providers)}), not both")
        wanted = list(providers)
    elif device in DEVICE_PROVIDERS:
        wanted = list(DEVICE_PROVIDERS[device])
    else:
        raise ConfigError(f"{owner}: field 'device' must be one of {sorted(DEVICE_PROVIDERS)}, "
                          f"got {device!r}")
    missing = [p for p in wanted if p not in available]
    if missing:
        hint = (" Install onnxruntime-gpu in place of onnxruntime (pip uninstall onnxruntime; "
                "pip install onnxruntime-gpu) on a machine with CUDA, or use device 'cpu'."
                if "CUDAExecutionProvider" in missing else "")
        raise ExecutionProviderError(
            f"{owner}: {' and '.join(missing)} not available in this onnxruntime build "
            f"(available: {list(available)}).{hint}")
    return wanted


class OnnxModel:
    """Exported model folder → token states (or logits) for batches of texts."""

    def __init__(self, folder: Path, *, threads: int | None = None,
                 providers: Sequence[str] | None = None, max_length: int | None = None,
                 owner: str = "onnx", device: str = "cpu") -> None:
        self.folder = folder
        self.owner = owner
        tok_path = folder / "tokenizer.json"
        if not tok_path.is_file():
            raise ModelSourceError(f"model folder {folder} has no tokenizer.json ({tok_path})")
        self.manifest: Manifest = load_manifest(folder)
        limit = self.manifest.max_length
        if max_length is not None:
            if max_length > limit:
                raise ConfigError(f"{owner}: field 'max_length' {max_length} exceeds the model's "
                                  f"{limit} ({folder / 'trawl_manifest.json'})")
            limit = max_length
        self.max_length = limit
        try:
            base = Tokenizer.from_file(str(tok_path))
        except Exception as exc:
            raise ModelSourceError(f"cannot read tokenizer {tok_path}: {exc}") from exc
        # The shipped tokenizer.json may pad/truncate to its own length (128 for MiniLM):
        # truncation comes from the model's config, padding is done per batch here.
        padding = base.padding or {}
        self.pad_id = int(padding.get("pad_id", 0))
        base.no_padding()
        base.no_truncation()
        self.spans_tokenizer = base
        self.tokenizer = Tokenizer.from_str(base.to_str())
        self.tokenizer.enable_truncation(self.max_length)
        self.pair_tokenizer = Tokenizer.from_str(base.to_str())
        self.pair_tokenizer.enable_truncation(self.max_length, strategy="only_second")
        self._by_length: dict[int, Tokenizer] = {}
        self.session = self._session(threads, session_providers(
            device, providers, owner, ort.get_available_providers()))
        self._warned = False
        self._warn_lock = threading.Lock()

    # -- session ---------------------------------------------------------------------
    def _session(self, threads: int | None, wanted: list[str]) -> Any:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        options.inter_op_num_threads = 1
        # Spinning threads burn shared cores and slow everyone (CI, laptops) down.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        path = self.folder / "model.onnx"
        try:
            return ort.InferenceSession(str(path), options, providers=wanted)
        except Exception as exc:
            raise ModelSourceError(f"onnxruntime cannot load {path}: {exc}") from exc

    # -- tokenising ------------------------------------------------------------------
    def _cap(self, texts: list[str]) -> list[str]:
        """Cut very long texts before tokenising (only past what the window can use)."""
        cap = self.max_length * CHARS_PER_TOKEN_CAP
        out = []
        for text in texts:
            if len(text) > cap:
                prefix = text[:cap]
                # Enough tokens in the prefix → the first max_length tokens are unchanged.
                if len(self.spans_tokenizer.encode(prefix, add_special_tokens=False)) \
                        > self.max_length + 1:
                    text = prefix
            out.append(text)
        return out

    def warn_truncated(self, encodings: Sequence[Encoding], limit: int | None = None) -> None:
        if self._warned:
            return
        if any(e.overflowing for e in encodings):
            with self._warn_lock:
                if not self._warned:
                    self._warned = True
                    warnings.warn(
                        f"{self.owner}: some inputs are longer than the model's "
                        f"{limit or self.max_length}-token window and were truncated (warned once); "
                        "chunk long documents so nothing is lost", UserWarning, stacklevel=4)

    def encode(self, texts: list[str], max_length: int | None = None) -> list[Encoding]:
        tokenizer = self.tokenizer
        if max_length is not None and max_length != self.max_length:
            cached = self._by_length.get(max_length)
            if cached is None:
                cached = Tokenizer.from_str(self.spans_tokenizer.to_str())
                cached.enable_truncation(max_length)
                self._by_length[max_length] = cached
            tokenizer = cached
        encodings = tokenizer.encode_batch(self._cap(texts))
        self.warn_truncated(encodings, max_length)
        return encodings

    def encode_pairs(self, query: str, passages: list[str]) -> list[Encoding]:
        q_tokens = len(self.spans_tokenizer.encode(query, add_special_tokens=False))
        if q_tokens + 8 > self.max_length:  # [CLS] q [SEP] p [SEP] with room for a passage
            raise InputError(f"{self.owner}: query has {q_tokens} tokens, the model's window is "
                             f"{self.max_length}; the passage is truncated, never the query, so "
                             "shorten the query")
        encodings = self.pair_tokenizer.encode_batch([(query, p) for p in self._cap(passages)])
        self.warn_truncated(encodings)
        return encodings

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        enc = self.spans_tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in enc.offsets]

    # -- running ---------------------------------------------------------------------
    def batches(self, encodings: Sequence[Encoding], batch_size: int
                ) -> Iterator[tuple[npt.NDArray[np.intp], dict[str, IntArray]]]:
        """Length-sorted batches (longest first) padded to their own longest input."""
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64,
                              count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = int(lengths[idx].max())
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                e = encodings[i]
                n = len(e.ids)
                ids[row, :n] = e.ids
                mask[row, :n] = 1
                types[row, :n] = e.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            yield idx, {k: feeds[k] for k in self.manifest.inputs}

    def run(self, feeds: dict[str, IntArray], output: str | None = None
            ) -> npt.NDArray[np.float32]:
        out = self.session.run([output or self.manifest.output], feeds)[0]
        return np.asarray(out, dtype=np.float32)


def progress(total: int, enabled: bool, description: str) -> Any:
    """A rich progress bar (or a no-op) advanced by the number of texts done."""
    if not enabled:
        return _NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
    return _RichProgress(bar, total, description)


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, n: int) -> None:
        return None


class _RichProgress(_NoProgress):
    def __init__(self, bar: Any, total: int, description: str) -> None:
        self.bar, self.total, self.description = bar, total, description

    def __enter__(self) -> _RichProgress:
        self.bar.start()
        self.task = self.bar.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def advance(self, n: int) -> None:
        self.bar.advance(self.task, n)
