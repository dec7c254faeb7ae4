"""8 threads search while another thread ingests (and prunes): no exceptions, sane results."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.plugins.ingest_support import host, make_corpus, pipeline
from trawl import Hit, Trawl
from trawl.ingest import index_paths

N_FILES = 160
SEARCHERS = 8


def _sane(hits: list[Hit], top_k: int) -> None:
    assert len(hits) <= top_k
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert len({h.chunk_id for h in hits}) == len(hits)
    for h in hits:
        assert h.chunk_id.startswith(h.doc_id + "#")
        assert h.text and h.metadata["path"].endswith(h.doc_id.split("/", 1)[1])


def test_searches_while_ingesting(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", N_FILES // 2)
    all_ids = {f"corpus/sub{i % 5}/note-{i:04d}.md" for i in range(N_FILES)}
    h = host()
    with Trawl.open(tmp_path / "index", pipeline=pipeline(h), host=h,
                    show_progress=False) as t:
        index_paths(t, [tmp_path / "corpus"], show_progress=False)
        assert t.manifest.doc_ids() < all_ids
        errors: list[BaseException] = []
        done = threading.Event()
        searches = [0] * SEARCHERS
        deleted: set[str] = set()

        def search(worker: int) -> None:
            queries = ["posting list", "dense retrieval recall", "marker3", "tokenization cache",
                       "reciprocal rank fusion scores"]
            try:
                while not done.is_set():
                    q = queries[searches[worker] % len(queries)]
                    k = 1 + searches[worker] % 10
                    hits = t.search(q, top_k=k)
                    _sane(hits, k)
                    assert all(h.doc_id in all_ids for h in hits)
                    if searches[worker] % 7 == 0:
                        ctx = t.context(q, max_tokens=200, top_k=3)
                        assert ctx.tokens <= 200
                    searches[worker] += 1
            except BaseException as exc:  # surfaced in the main thread
                errors.append(exc)

        def ingest() -> None:
            try:
                make_corpus(tmp_path / "corpus", N_FILES)  # rewrites the first half, adds more
                report = index_paths(t, [tmp_path / "corpus"], batch_size=8,
                                     show_progress=False)
                assert report.added == N_FILES // 2
                assert t.manifest.doc_ids() == all_ids
                gone = sorted(all_ids)[:10]
                for doc_id in gone:
                    (tmp_path / doc_id).unlink()
                pruned = index_paths(t, [tmp_path / "corpus"], prune=True, batch_size=8,
                                     show_progress=False)
                assert pruned.pruned == len(gone)
                deleted.update(gone)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        threads = [threading.Thread(target=search, args=(i,)) for i in range(SEARCHERS)]
        for th in threads:
            th.start()
        time.sleep(0.05)
        writer = threading.Thread(target=ingest)
        writer.start()
        writer.join(timeout=240)
        done.set()
        for th in threads:
            th.join(timeout=60)
        assert not errors, errors
        assert all(n > 0 for n in searches), searches
        # after the writer returned, no hit points at a pruned document
        for _ in range(3):
            assert not {h.doc_id for h in t.search("marker", top_k=50)} & deleted
        assert t.manifest.count() == N_FILES - len(deleted)
        for name, r in t.pipeline.retrievers.items():
            assert r.index.doc_ids() == t.manifest.doc_ids(), name
