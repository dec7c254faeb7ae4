"""trawl-plugin-hello: registers a TF-IDF index, a phrase-boost reranker and an INI reader.

Only hook implementations live here; the components are registered lazily as
``"module:Class"`` strings, so ``trawl plugins`` lists them without importing them.
"""

from __future__ import annotations

from typing import Any

import trawl

__version__ = "0.1.0"


@trawl.hookimpl
def register_indexes(register: Any) -> None:
    register("trawl_plugin_hello.tfidf:TfidfIndex", name="tfidf")


@trawl.hookimpl
def register_rerankers(register: Any) -> None:
    register("trawl_plugin_hello.phrase_boost:PhraseBoostReranker", name="phrase-boost",
             aliases=("phrase",))


@trawl.hookimpl
def register_readers(register: Any) -> None:
    register("trawl_plugin_hello.ini:IniReader", name="ini")
