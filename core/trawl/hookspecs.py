"""trawl's hook specifications.

Every ``register_*`` hook receives a host-owned ``register`` callback::

    @trawl.hookimpl
    def register_indexes(register):
        register(MyIndex, name="my-index", aliases=("mine",))

New keyword options go on the callback, never on the hook signature, so old plugins
keep working when the host grows. Only ``resolve_model_source`` is ``firstresult``:
exactly one plugin should answer "where are this model's files?".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import click

    from .components import Component

hookspec = pluggy.HookspecMarker("trawl")
hookimpl = pluggy.HookimplMarker("trawl")


class Register(Protocol):
    """The callback each ``register_*`` hook receives."""

    def __call__(
        self, factory: type[Component], *, name: str, aliases: tuple[str, ...] = ()
    ) -> None: ...


@hookspec
def register_encoders(register: Register) -> None:
    """Register ``Encoder`` subclasses (dense or multi-vector) by name."""


@hookspec
def register_indexes(register: Register) -> None:
    """Register ``Index`` subclasses (vector or lexical) by name."""


@hookspec
def register_rerankers(register: Register) -> None:
    """Register ``Reranker`` subclasses by name."""


@hookspec
def register_multivector_transforms(register: Register) -> None:
    """Register ``MultiVectorTransform`` subclasses (e.g. MUVERA FDE) by name."""


@hookspec
def register_readers(register: Register) -> None:
    """Register ``Reader`` subclasses: file formats ``trawl index`` can read, claimed by
    suffix, file name or MIME type."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``trawl`` command-line group."""


@hookspec(firstresult=True)
def resolve_model_source(name: str) -> Path | None:
    """Map a model name (packaged model, local folder, hub id) to a local folder.

    Return ``None`` to let the next plugin try; the first non-``None`` answer wins.
    """
