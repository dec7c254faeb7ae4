"""Plugin discovery and the component registry.

trawl runs its own entry-point loop instead of ``load_setuptools_entrypoints``:
pluggy's loop stops at the first plugin whose import raises and silently skips
duplicate names. Here a broken plugin becomes a ``PluginLoadError`` in
``host.load_errors`` (shown by ``trawl plugins``) and every other plugin keeps working.

No module-global manager: each ``Trawl`` owns a ``PluginHost`` so libraries embedding
trawl never share state by accident; the CLI uses ``default_host()``.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, NoReturn

import pluggy
from pydantic import ValidationError

from . import hookspecs
from .components import Component, ComponentConfig, ComponentContext
from .distribution import own_distribution_name, own_version
from .errors import (
    ConfigError,
    PluginConflictError,
    PluginHardExit,
    PluginLoadError,
    UnknownComponentError,
    describe_exception,
)

ENTRY_POINT_GROUP = "trawl"
ComponentKind = Literal["encoder", "index", "reranker", "transform", "reader"]
KIND_HOOKS: dict[ComponentKind, str] = {
    "encoder": "register_encoders",
    "index": "register_indexes",
    "reranker": "register_rerankers",
    "transform": "register_multivector_transforms",
    "reader": "register_readers",
}
# Core components that are not backends (the exact numpy index, the file readers that
# need at most the `ingest` extra) live here.
CORE_PLUGINS = ("trawl.builtin", "trawl.ingest.formats")
# in-process limit for one plugin step (import, a hook); TRAWL_PLUGIN_TIMEOUT overrides
IN_PROCESS_TIMEOUT_S = 30.0


@dataclass
class RegisteredComponent:
    """A factory registered by a plugin: a class, or a lazy ``"module:Class"`` reference."""

    kind: ComponentKind
    name: str
    factory: type[Component] | str
    plugin: str
    distribution: str
    aliases: tuple[str, ...] = ()

    def load(self) -> type[Component]:
        """Import the factory if it was registered lazily (keeps listing free of backends)."""
        if isinstance(self.factory, str):
            module_name, _, attr = self.factory.partition(":")
            try:
                module = importlib.import_module(module_name)
                self.factory = getattr(module, attr)
            except Exception as exc:
                raise PluginLoadError(
                    distribution=self.distribution,
                    entry_point=self.plugin,
                    cause=exc,
                ) from exc
        return self.factory  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        target = self.factory if isinstance(self.factory, str) else (
            f"{self.factory.__module__}:{self.factory.__qualname__}")
        return {"kind": self.kind, "name": self.name, "aliases": list(self.aliases),
                "factory": target}


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    builtin: bool = False
    traceback: str | None = None  # the plugin's own traceback, for --traceback
    commands: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "hooks": self.hooks, "components": self.components, "commands": self.commands,
            "error": self.error, "traceback": self.traceback, "builtin": self.builtin,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PluginInfo:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class ComponentRegistry:
    """Components by kind and name, with the plugin and distribution that gave them."""

    def __init__(self) -> None:
        self._by_kind: dict[ComponentKind, dict[str, RegisteredComponent]] = {
            k: {} for k in KIND_HOOKS
        }
        self._aliases: dict[ComponentKind, dict[str, str]] = {k: {} for k in KIND_HOOKS}
        self.conflicts: list[PluginConflictError] = []
        self.load_errors: list[PluginLoadError] = []  # set by the host: named in lookups
        self._conflicted: dict[tuple[str, str], PluginConflictError] = {}

    def add(self, entry: RegisteredComponent) -> None:
        table = self._by_kind[entry.kind]
        for key in (entry.name, *entry.aliases):
            existing_name = self._aliases[entry.kind].get(key, key if key in table else None)
            if existing_name is not None and existing_name in table:
                other = table[existing_name]
                err = PluginConflictError(
                    f"{entry.kind} name {key!r} is registered twice: by plugin {other.plugin!r} "
                    f"(distribution {other.distribution!r}) and by plugin {entry.plugin!r} "
                    f"(distribution {entry.distribution!r}); uninstall or disable one "
                    "(TRAWL_DISABLE_PLUGINS)"
                )
                self.conflicts.append(err)
                self._conflicted[(entry.kind, key)] = err
                return
        table[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[entry.kind][alias] = entry.name

    def names(self, kind: ComponentKind) -> list[str]:
        return sorted(self._by_kind[kind])

    def entries(self, kind: ComponentKind | None = None) -> list[RegisteredComponent]:
        kinds = [kind] if kind else list(KIND_HOOKS)
        return [e for k in kinds for e in self._by_kind[k].values()]

    def get(self, kind: ComponentKind, name: str) -> RegisteredComponent:
        if (kind, name) in self._conflicted:
            raise self._conflicted[(kind, name)]
        table = self._by_kind[kind]
        real = self._aliases[kind].get(name, name)
        if real not in table:
            known = ", ".join(self.names(kind)) or "none"
            failed = "".join(
                f"plugin {e.entry_point!r} (distribution {e.distribution!r}) failed to load"
                f"{' in ' + e.during if e.during else ''}: {describe_exception(e.cause)}; "
                for e in self.load_errors[:5])
            if len(self.load_errors) > 5:
                failed += f"{len(self.load_errors) - 5} more plugins failed to load; "
            hint = ("fix or uninstall the failed plugin (`trawl plugins`, `trawl --traceback`)"
                    if failed else "install the plugin that provides it (trawl install NAME)")
            raise UnknownComponentError(
                f"no {kind} named {name!r}; {failed}registered {kind}s: {known}. "
                f"To fix: {hint}.", plugin_errors=self.load_errors)
        return table[real]

    def config_model(self, kind: ComponentKind, name: str) -> type[ComponentConfig]:
        return self.get(kind, name).load().Config

    def validate_config(
        self, kind: ComponentKind, name: str, config: dict[str, Any] | None
    ) -> ComponentConfig:
        """Validate user config against the component's ``Config``; errors name plugin and field."""
        entry = self.get(kind, name)
        cls = entry.load()
        try:
            return cls.Config.model_validate(config or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"field {'.'.join(str(p) for p in e['loc']) or '(root)'!r}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(
                f"{kind} {name!r} (plugin {entry.plugin!r}, distribution "
                f"{entry.distribution!r}): {problems}"
            ) from exc

    def build(
        self,
        kind: ComponentKind,
        name: str,
        config: dict[str, Any] | ComponentConfig | None,
        context: ComponentContext,
    ) -> Component:
        entry = self.get(kind, name)
        cls = entry.load()
        cfg = config if isinstance(config, ComponentConfig) else self.validate_config(
            kind, name, config)
        context.registry = self
        try:
            component = cls(cfg, context)
            component.plugin_origin = (entry.plugin, entry.distribution)
            return component
        except (ConfigError, PluginLoadError) as exc:
            raise exc
        except Exception as exc:
            from .errors import TrawlError

            if isinstance(exc, TrawlError):
                raise
            raise PluginLoadError(
                distribution=entry.distribution, entry_point=entry.plugin, cause=exc
            ) from exc


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {item.strip() for item in raw.split(",") if item.strip()}


class PluginHost:
    """Owns a pluggy ``PluginManager``, loads plugins, and builds the component registry."""

    def __init__(
        self,
        *,
        entry_points: bool = True,
        plugins: Iterable[tuple[str, object]] = (),
        load: set[str] | None = None,
        disable: set[str] | None = None,
        on_loading: Callable[[str, str, str], None] | None = None,
        contain: bool = False,
    ) -> None:
        self.pm = pluggy.PluginManager("trawl")
        self.pm.add_hookspecs(hookspecs)
        self.load_errors: list[PluginLoadError] = []
        self._dists: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)
        self._registry: ComponentRegistry | None = None
        self._lock = threading.Lock()
        # called with (plugin, distribution, step) just before plugin code runs (its import,
        # each hook): the isolated probe (plugin_probe.py) names a plugin that ends the process
        self.on_loading = on_loading
        # the CLI's host: os._exit in plugin code raises, hangs time out (_running_plugin_code)
        self.contain = contain
        self._load = load if load is not None else _env_list("TRAWL_LOAD_PLUGINS")
        self._disable = disable if disable is not None else (
            _env_list("TRAWL_DISABLE_PLUGINS") or set())
        if os.environ.get("TRAWL_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(lambda msg: sys.stderr.write(str(msg)))
            self.pm.enable_tracing()
        for module_name in CORE_PLUGINS:
            self.register(importlib.import_module(module_name), name=module_name,
                          distribution=own_distribution_name(), version=own_version())
        if entry_points:
            self._load_entry_points()
        for name, obj in plugins:
            self.register(obj, name=name)

    # -- loading -----------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        seen: set[str] = set()
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist_name = ep.dist.name if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else "unknown"
            if ep.name in seen:
                continue
            seen.add(ep.name)
            wanted = {ep.name, dist_name}
            if self._load is not None and not (wanted & self._load):
                continue
            if wanted & self._disable:
                self.pm.set_blocked(ep.name)
                continue
            if self.on_loading is not None:
                self.on_loading(ep.name, dist_name, "import")
            try:
                with _running_plugin_code(ep.name, dist_name, "import",
                                          contain=self.contain):
                    plugin = ep.load()
            except BaseException as exc:
                # SystemExit and KeyboardInterrupt too: a plugin calling sys.exit() at import
                # would otherwise end every command (a Ctrl-C while an import hangs lands here
                # as well, which reports the hanging plugin and goes on without it)
                self.load_errors.append(PluginLoadError(
                    distribution=dist_name, entry_point=ep.name, cause=exc, during="import"))
                self._dists[ep.name] = (dist_name, version)
                continue
            try:
                self.register(plugin, name=ep.name, distribution=dist_name, version=version)
            except PluginLoadError:
                continue  # recorded in load_errors; the other plugins keep loading

    def register(self, plugin: object, *, name: str, distribution: str | None = None,
                 version: str | None = None) -> None:
        """Register a plugin object (module or instance with ``@hookimpl`` methods).

        A hookimpl whose name matches no hookspec (a typo) is rejected loudly: the
        plugin is unregistered and recorded in ``load_errors``.
        """
        with self._lock:
            self.pm.register(plugin, name=name)
            self._dists[name] = (distribution or name, version or "unknown")
            try:
                self.pm.check_pending()
            except pluggy.PluginValidationError as exc:
                self.pm.unregister(name=name)
                err = PluginLoadError(distribution=distribution or name, entry_point=name,
                                      cause=exc)
                self.load_errors.append(err)
                raise err from exc
            self._registry = None

    def unregister(self, name: str) -> None:
        with self._lock:
            self.pm.unregister(name=name)
            self._dists.pop(name, None)
            self._registry = None

    # -- registry ----------------------------------------------------------------------
    @property
    def registry(self) -> ComponentRegistry:
        with self._lock:
            if self._registry is None:
                self._registry = self._build_registry()
            return self._registry

    def _build_registry(self) -> ComponentRegistry:
        registry = ComponentRegistry()
        self._hook_errors: list[PluginLoadError] = []
        for kind, hook_name in KIND_HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):  # registration order
                plugin_name = impl.plugin_name
                dist = self._dists.get(plugin_name, (plugin_name, "unknown"))[0]
                pending: list[RegisteredComponent] = []

                def register(factory: Any, *, name: str, aliases: tuple[str, ...] = (),
                             _kind: ComponentKind = kind, _plugin: str = plugin_name,
                             _dist: str = dist, _pending: list[RegisteredComponent] = pending
                             ) -> None:
                    if not isinstance(factory, str) and not (
                            isinstance(factory, type) and issubclass(factory, Component)):
                        raise TypeError(f"register() needs a Component subclass or a "
                                        f"'module:Class' string, got {factory!r}")
                    _pending.append(RegisteredComponent(
                        kind=_kind, name=name, factory=factory, plugin=_plugin,
                        distribution=_dist, aliases=tuple(aliases)))

                if self.on_loading is not None:
                    self.on_loading(plugin_name, dist, hook_name)
                try:
                    with _running_plugin_code(plugin_name, dist, hook_name,
                                              contain=self.contain):
                        impl.function(register=register)
                except BaseException as exc:
                    self._hook_errors.append(PluginLoadError(
                        distribution=dist, entry_point=plugin_name, cause=exc,
                        during=hook_name))
                    continue
                for entry in pending:
                    registry.add(entry)
        registry.load_errors = [*self.load_errors, *self._hook_errors]
        return registry

    def plugin_commands(self) -> list[tuple[str, Any]]:
        """``(plugin, click.Command)`` pairs from every ``register_commands`` hook.

        Each plugin adds its commands to a group of its own, so one that fails (or exits)
        adds nothing and is recorded in ``command_errors``; the CLI decides about name
        clashes with its own commands.
        """
        import click

        found: list[tuple[str, Any]] = []
        self.command_errors: list[PluginLoadError] = []
        for impl in reversed(self.pm.hook.register_commands.get_hookimpls()):
            plugin_name = impl.plugin_name
            dist = self._dists.get(plugin_name, (plugin_name, "unknown"))[0]
            group = click.Group(name="trawl")
            if self.on_loading is not None:
                self.on_loading(plugin_name, dist, "register_commands")
            try:
                with _running_plugin_code(plugin_name, dist, "register_commands",
                                          contain=self.contain):
                    impl.function(cli=group)
            except BaseException as exc:
                self.command_errors.append(PluginLoadError(
                    distribution=dist, entry_point=plugin_name, cause=exc,
                    during="register_commands"))
                continue
            found.extend((plugin_name, cmd) for cmd in group.commands.values())
        return found

    @property
    def errors(self) -> list[PluginLoadError]:
        """Import-time, hook-time and command-registration failures, in that order."""
        self.registry  # noqa: B018  (builds the registry so hook errors are known)
        return [*self.load_errors, *getattr(self, "_hook_errors", []),
                *getattr(self, "command_errors", [])]

    # -- reporting ---------------------------------------------------------------------
    def plugin_infos(self, *, include_core: bool = False) -> list[PluginInfo]:
        registry = self.registry
        infos: list[PluginInfo] = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda x: x[0]):
            if plugin is None:
                continue
            builtin = name in CORE_PLUGINS
            if builtin and not include_core:
                continue
            dist, version = self._dists.get(name, (name, "unknown"))
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            comps = [e.describe() for e in registry.entries() if e.plugin == name]
            infos.append(PluginInfo(name=name, distribution=dist, version=version, hooks=hooks,
                                    components=comps, builtin=builtin))
        for err in self.errors:
            match = next((i for i in infos if i.name == err.entry_point), None)
            if match is not None:
                match.error = str(err) if match.error is None else f"{match.error}; {err}"
                match.traceback = (err.traceback if match.traceback is None
                                   else match.traceback + err.traceback)
            else:
                dist, version = self._dists.get(err.entry_point,
                                                (err.distribution, "unknown"))
                infos.append(PluginInfo(name=err.entry_point, distribution=dist,
                                        version=version, error=str(err),
                                        traceback=err.traceback))
        return infos

    def resolve_model_source(self, name: str) -> Any:
        return self.pm.hook.resolve_model_source(name=name)


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment (a bad value means the default)."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


@contextmanager
def _running_plugin_code(plugin: str, distribution: str, step: str, *,
                         contain: bool) -> Iterator[None]:
    """Guard a plugin's import or hook.

    After a few seconds (``TRAWL_PLUGIN_SLOW_S``, 5), say on stderr which plugin is still
    running, so a hang is attributable; Ctrl-C then reports that plugin and carries on
    without it. With ``contain`` (the CLI's host, in its main thread) two more guards:

    * ``os._exit`` raises ``PluginHardExit`` instead of ending the process: a plugin calling
      it at import would otherwise end every command with its status and no word of why.
      Only the calling process is guarded (a child the plugin forks still exits) and
      ``os._exit`` is restored afterwards. Library hosts leave it alone: other threads may
      legitimately be exiting forked children meanwhile.
    * after ``TRAWL_PLUGIN_TIMEOUT`` (30 s in-process) the main thread gets a SIGINT, which
      interrupts a sleeping or looping plugin; it becomes a ``TimeoutError`` for that plugin.
      A hang inside C code that ignores signals still needs Ctrl-C or the isolated probe.
    """
    delay = env_seconds("TRAWL_PLUGIN_SLOW_S", 5)

    def warn() -> None:
        from .display import safe_text

        sys.stderr.write(safe_text(
            f"trawl: plugin {plugin!r} (distribution {distribution!r}) is still in {step} "
            f"after {delay:g} s; press Ctrl-C to skip it") + "\n")

    timer = threading.Timer(delay, warn)
    timer.daemon = True
    in_main = threading.current_thread() is threading.main_thread()
    watch = (contain and in_main and hasattr(signal, "pthread_kill")
             and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    limit = env_seconds("TRAWL_PLUGIN_TIMEOUT", IN_PROCESS_TIMEOUT_S)
    fired = threading.Event()
    finished = threading.Event()
    done = threading.Lock()

    def interrupt() -> None:
        with done:  # never once the guarded code has finished
            if finished.is_set():
                return
            fired.set()
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    watchdog = threading.Timer(limit, interrupt)
    watchdog.daemon = True
    real_exit = os._exit
    if contain:
        pid = os.getpid()

        def guarded_exit(status: int) -> NoReturn:
            if os.getpid() != pid:
                real_exit(status)
            raise PluginHardExit(status)

        setattr(os, "_exit", guarded_exit)  # noqa: B010 - mypy rejects assigning a function
    timer.start()
    if watch:
        watchdog.start()
    try:
        yield
    except KeyboardInterrupt as exc:
        if fired.is_set():
            raise TimeoutError(f"did not finish {step} within {limit:g} s (interrupted)"
                               ) from exc
        raise
    finally:  # most important first: a late SIGINT may still land in here
        if contain:
            setattr(os, "_exit", real_exit)  # noqa: B010
        with done:
            finished.set()
            watchdog.cancel()
        timer.cancel()
        if fired.is_set():
            _absorb_pending_interrupt()


def _absorb_pending_interrupt() -> None:
    """The watchdog's SIGINT may still be pending when the plugin code returned on its own;
    let it land here rather than in whatever runs next."""
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass


_default_host: PluginHost | None = None
_default_lock = threading.Lock()


def default_host() -> PluginHost:
    """The process-wide host used by the CLI and the TUI (libraries should own theirs)."""
    global _default_host
    with _default_lock:
        if _default_host is None:
            _default_host = PluginHost(contain=True)
        return _default_host
