"""Conformance kits for plugin authors.

Subclass a contract in your plugin's tests and provide one fixture; every test in the
mixin then runs against your component (the haystack ``DocumentStoreBaseTests`` idea)::

    from trawl.testing import IndexContract

    class TestMyIndex(IndexContract):
        @pytest.fixture
        def make_index(self, tmp_path):
            def make(dim=8, metric="cosine", storage=True):
                ctx = ComponentContext(name="t", dim=dim, metric=metric,
                                       storage_dir=tmp_path / "idx" if storage else None)
                return MyIndex(MyIndex.Config(), ctx)
            return make

``trawl.testing.ExactIndex`` is the brute-force numpy reference the kits compare with.
pytest is imported here, so import this module only from tests.
"""

from __future__ import annotations

from ..builtin import ExactIndex
from .contracts import (
    EncoderContract,
    IndexContract,
    MultiVectorTransformContract,
    ReaderContract,
    RerankerContract,
    sample_chunks,
)
from .fake_plugins import write_fake_plugin

__all__ = [
    "EncoderContract", "ExactIndex", "IndexContract", "MultiVectorTransformContract",
    "ReaderContract", "RerankerContract", "sample_chunks", "write_fake_plugin",
]
