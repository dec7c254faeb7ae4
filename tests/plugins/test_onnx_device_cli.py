"""``--device`` on the CLI reaches the onnx encoder (real onnxruntime, no mocks): ``cuda``
where onnxruntime has no CUDA provider is the typed error naming it, ``cpu`` indexes and
searches, a pipeline without a ``device`` field says so, and nothing is saved."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest

import trawl
from tests.plugins.conftest_onnx import minilm_fp32  # noqa: F401  (fixture)
from trawl.cli import main

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_device_flag_reaches_the_encoder(tmp_path: Path, minilm_fp32: Path,  # noqa: F811
                                         capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in {"a.txt": "reciprocal rank fusion of rankings",
                       "b.txt": "graphics processors run neural networks"}.items():
        (docs / name).write_text(text)
    pipeline = tmp_path / "dense.toml"
    pipeline.write_text(f'name = "dense"\n[[retrievers]]\nname = "dense"\nindex = "exact"\n'
                        f'encoder = "onnx-dense"\nencoder_config = {{ model = '
                        f'{json.dumps(str(minilm_fp32))} }}\n')
    index = tmp_path / "idx"

    code, _, err = _run(capsys, "index", str(docs), "-i", str(index), "-p", str(pipeline),
                        "--device", "cuda", "--json")
    if HAS_CUDA:
        assert code == 0, err
    else:
        assert code == 1 and "CUDAExecutionProvider" in err and "onnxruntime-gpu" in err, err
        assert not index.exists()  # a failed create leaves no half index

    code, out, err = _run(capsys, "index", str(docs), "-i", str(index), "-p", str(pipeline),
                          "--device", "cpu", "--json")
    assert code == 0, err
    saved = json.loads((index / "pipeline.json").read_text())["pipeline"]
    assert "device" not in saved["retrievers"][0]["encoder_config"]  # this process only

    code, out, err = _run(capsys, "search", "GPU neural nets", "-i", str(index),
                          "--device", "cpu", "--json")
    assert code == 0, err
    assert json.loads(out)["hits"][0]["doc_id"].endswith("b.txt")
    code, out, err = _run(capsys, "search", "GPU neural nets", "-i", str(index),
                          "--device", "cuda", "--json")
    assert (code == 0) if HAS_CUDA else (code == 1 and "CUDAExecutionProvider" in err), err


def test_device_flag_on_a_pipeline_without_one_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "bm25"
    with trawl.Trawl.open(index, pipeline="bm25", show_progress=False) as t:
        t.add([{"id": "a", "text": "rank fusion"}])
    code, _, err = _run(capsys, "search", "fusion", "-i", str(index), "--device", "cuda")
    assert code == 1
    assert "pipeline 'bm25'" in err and "takes the setting 'device'" in err, err
    for command in ("serve", "mcp", "eval", "index"):
        code, out, _ = _run(capsys, command, "--help")
        assert code == 0 and "--device [cpu|cuda]" in out, command
