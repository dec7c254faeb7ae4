"""The ``trawl`` command line: a thin client of the ``Trawl`` API."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click

from .config import PRESETS, FusionConfig, TrawlSettings
from .display import safe_json, safe_text
from .errors import (
    InputError,
    MissingDependencyError,
    PluginLoadError,
    TrawlError,
    UnknownComponentError,
)
from .plugins import PluginHost, default_host


def _echo_json(obj: Any) -> None:
    click.echo(safe_json(obj))


class _Debug:
    """``--traceback`` / ``TRAWL_DEBUG=1``: show original tracebacks of failures."""

    enabled = os.environ.get("TRAWL_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


class TrawlGroup(click.Group):
    """The ``trawl`` group: core commands are defined here; plugin commands load lazily.

    No plugin is imported to run a core command (``uninstall`` works with a broken
    plugin installed). An unknown subcommand name loads plugins in-process (each failure
    contained and reported by name) and looks for a plugin command of that name. ``--help``
    lists plugin commands from the isolated probe (plugin_probe.py), so a plugin that
    hangs or calls ``os._exit`` cannot break the help either.
    """

    _plugin_commands: dict[str, click.Command] | None = None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        commands = self._load_plugin_commands()
        if cmd_name in commands:
            return commands[cmd_name]
        host = default_host()
        failed = host.errors
        if failed:
            raise click.UsageError(
                f"No such command {cmd_name!r}. It may come from a plugin that failed to load: "
                + "; ".join(str(e) for e in failed[:5]), ctx)
        return None

    def _load_plugin_commands(self) -> dict[str, click.Command]:
        if self._plugin_commands is None:
            self._plugin_commands = {}
            for plugin, command in default_host().plugin_commands():
                name = command.name or ""
                if name in self.commands or name in self._plugin_commands:
                    click.echo(safe_text(f"warning: plugin {plugin!r} adds command {name!r}, "
                                         "which already exists; ignored"), err=True)
                    continue
                self._plugin_commands[name] = command
        return self._plugin_commands

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_commands(ctx, formatter)  # core commands only: list_commands is ours
        from .plugin_probe import probe_plugins

        try:
            report = probe_plugins()
        except TrawlError as exc:
            rows = [("(unavailable)", safe_text(exc))]
        else:
            rows = [(safe_text(c.name), safe_text(f"{c.help} [plugin {c.plugin}]"))
                    for c in sorted(report.commands, key=lambda c: c.name)
                    if c.name not in self.commands]
            broken = [p for p in report.plugins if p.error]
            if broken:
                rows.append(("(not loaded)", safe_text(
                    ", ".join(p.name for p in broken) + ": see `trawl plugins`")))
        if rows:
            with formatter.section("Plugin commands"):
                formatter.write_dl(rows)


def _set_traceback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _Debug.enabled = True


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """trawl's version and each installed plugin's, from metadata alone (imports no
    plugin, so it works while one is broken)."""
    if not value or ctx.resilient_parsing:
        return
    import platform
    from importlib import metadata

    from .distribution import ENTRY_POINT_GROUP, normalize, own_distribution, own_version

    own = own_distribution()
    where = (f"distribution {own.metadata['Name']} {own.version}" if own is not None
             else "not installed: running from a source tree")
    click.echo(safe_text(f"trawl {own_version()} ({where}; Python {platform.python_version()})"))
    rows = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        name, version = (dist.metadata["Name"], dist.version) if dist is not None else ("?", "?")
        builtin = own is not None and normalize(name) == normalize(own.metadata["Name"])
        rows.append((ep.name, f"{name} {version}{' (built in)' if builtin else ''}"))
    if rows:
        click.echo("plugins:")
        width = max(len(r[0]) for r in rows)
        for plugin, where in rows:
            click.echo(safe_text(f"  {plugin:<{width}}  {where}"))
    ctx.exit()


def _open(index: str | None, pipeline: str | None, host: PluginHost, progress: bool = True,
          create: bool = True, device: str | None = None) -> Any:
    from .api import Trawl

    return Trawl.open(index, pipeline=pipeline, host=host, show_progress=progress, create=create,
                      component_settings=device_settings(device))


def device_settings(device: str | None) -> dict[str, Any] | None:
    """``--device`` as the component settings it stands for (none when not given)."""
    return None if device is None else {"device": device}


#: ``--device``: a query-time setting given to every component that has a ``device`` field
#: (core names no backend; the onnx encoders and cross-encoder have one)
device_option = click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default=None,
    help="Run the pipeline's models here (components with a `device` setting, such as the "
         "onnx encoders and cross-encoder; cuda needs onnxruntime-gpu). Default: the "
         "pipeline's (cpu). Not saved with the index.")


@click.group(cls=TrawlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_show_version,
              help="Show trawl's version and each plugin's, and exit.")
@click.option("--traceback", is_flag=True, expose_value=False, is_eager=True,
              callback=_set_traceback,
              help="Show the original traceback of failures, plugin ones included "
                   "(also TRAWL_DEBUG=1).")
def cli() -> None:
    """trawl: plugin-based retrieval for RAG (BM25, dense, hybrid, MUVERA multi-vector)."""


@cli.group(name="plugins", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Include core's own components.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins_cmd(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List installed plugins, their components, commands and load errors.

    Plugins are loaded in a separate process with a time limit, so this works even when a
    plugin exits or hangs while loading (imports no backend). `trawl plugins new NAME`
    starts a new plugin package.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .plugin_probe import probe_plugins

    infos = probe_plugins(include_core=show_all).plugins
    if as_json:
        _echo_json([i.to_json() for i in infos])
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("plugin", "distribution", "version", "components", "status")
    for i in infos:
        comps = ", ".join([f"{c['kind']}:{c['name']}" for c in i.components]
                          + [f"command:{c}" for c in i.commands]) or "-"
        status = Text(safe_text(f"error: {i.error}"), style="red") if i.error else Text("ok")
        table.add_row(*(Text(safe_text(v)) for v in (i.name, i.distribution, i.version, comps)),
                      status)
    console = Console()
    console.print(table)
    if _Debug.enabled:
        for i in infos:
            if i.traceback:
                console.print(Text(safe_text(f"plugin {i.name!r}:\n{i.traceback}",
                                             multiline=True)))


@plugins_cmd.command(name="new")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Where to write it (default: ./trawl-plugin-NAME).")
def plugins_new(name: str, directory: Path | None) -> None:
    """Start a plugin package: pyproject with the entry point, one component, its tests."""
    from .scaffold import scaffold

    root = scaffold(name, directory)
    click.echo(safe_text(f"created {root}; next: trawl install -e {root} && "
                         f"python -m pytest {root}"))


def _pip(args: list[str]) -> None:
    """Run pip in trawl's own interpreter (so plugins land where trawl can find them)."""
    cmd = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise click.ClickException(f"pip exited with status {result.returncode}: {' '.join(cmd)}")


@cli.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-e", "--editable", is_flag=True, help="Install a local folder in editable mode.")
@click.option("-U", "--upgrade", is_flag=True)
@click.option("--no-deps", is_flag=True, help="Do not install the plugin's dependencies.")
@click.option("--force", is_flag=True,
              help="Install even what fails the safety checks (after showing what changes).")
@click.option("--dry-run", is_flag=True, help="Resolve and check only; change nothing.")
def install(packages: tuple[str, ...], editable: bool, upgrade: bool, no_deps: bool,
            force: bool, dry_run: bool) -> None:
    """Install plugins (PyPI names, local folders or wheels) into trawl's environment.

    pip resolves first and changes nothing; each distribution that would arrive is
    checked (a trawl entry point, no files of trawl's own packages, no `trawl` command,
    trawl and what it needs kept in range). Then exactly the checked wheels are installed
    and the new plugin is loaded in a child process; if it fails, the install is undone.
    """
    from .install import InstallRefused, PipError
    from .install import install as run_install

    try:
        run_install(packages, editable=editable, upgrade=upgrade, no_deps=no_deps,
                    force=force, dry_run=dry_run, say=lambda line: click.echo(safe_text(line)))
    except InstallRefused as exc:
        click.echo("would change:", err=True)
        for line in exc.plan.describe():
            click.echo(safe_text(f"  {line}"), err=True)
        click.echo("Error (install refused):", err=True)
        for problem in exc.problems:
            click.echo(safe_text(f"  - {problem}"), err=True)
        click.echo("Nothing was changed. --force installs it anyway.", err=True)
        sys.exit(1)
    except PipError as exc:  # pip's own lines, as pip printed them
        click.echo(safe_text(f"Error ({exc.title}): {exc}", multiline=True), err=True)
        sys.exit(1)


@cli.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def uninstall(packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugins by distribution or plugin name (never imports them, so it works
    while a plugin is broken; refuses trawl itself and what trawl needs)."""
    from .lifecycle import resolve_uninstall, still_installed

    targets = resolve_uninstall(packages)
    listing = ", ".join(f"{t.distribution} (plugins: {', '.join(t.plugins)})" for t in targets)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"not uninstalling {listing} without confirmation: stdin is not a "
                             "terminal; pass -y", title="cannot uninstall")
        if not click.confirm(safe_text(f"Uninstall {listing}?"), default=False):
            raise click.Abort()
    _pip(["uninstall", "-y", *(t.distribution for t in targets)])
    left = still_installed(targets)
    if left:  # pip exits 0 when it declines (e.g. a distribution outside its environment)
        raise TrawlError(f"pip did not remove {', '.join(left)} (see pip's message above)",
                         title="uninstall failed")


def _check_globs(ctx: click.Context, param: click.Parameter,
                 value: tuple[str, ...]) -> tuple[str, ...]:
    from .ingest.walk import check_glob

    for pattern in value:
        try:
            check_glob(pattern)
        except InputError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


def _check_encodings(ctx: click.Context, param: click.Parameter,
                     value: tuple[str, ...]) -> tuple[str, ...]:
    from .ingest.readers import check_encodings

    try:
        check_encodings(value)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


def _check_finite(ctx: click.Context, param: click.Parameter,
                  value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--index", "-i", "index", default=None, help="Index name or folder.")
@click.option("--pipeline", "-p", default=None,
              help=f"Preset ({', '.join(PRESETS)}) or TOML file, for a new index.")
@click.option("--include", multiple=True, callback=_check_globs,
              help="Glob of files to include (repeatable).")
@click.option("--exclude", multiple=True, callback=_check_globs,
              help="Glob of files to skip (repeatable).")
@click.option("--prune", is_flag=True, help="Remove documents whose files are gone.")
@click.option("--follow-symlinks", is_flag=True, help="Follow symlinks out of the given roots.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=None,
              help="Skip files larger than this many bytes (default 32 MiB).")
@click.option("--encoding", "encodings", multiple=True, callback=_check_encodings,
              help="Encoding to try for files that are not UTF-8 (repeatable, in order).")
@click.option("--hidden", is_flag=True, help="Also index hidden files and folders.")
@click.option("--no-ignore-files", is_flag=True, help="Do not read .gitignore/.trawlignore.")
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def index(paths: tuple[Path, ...], index: str | None, pipeline: str | None,
          include: tuple[str, ...], exclude: tuple[str, ...], prune: bool,
          follow_symlinks: bool, max_bytes: int | None, encodings: tuple[str, ...],
          hidden: bool, no_ignore_files: bool, device: str | None, as_json: bool) -> None:
    """Index files and folders (txt, md, html, pdf, jsonl, BEIR corpus.jsonl)."""
    try:
        from .ingest import index_paths
    except ImportError as exc:  # pragma: no cover - only before ingestion lands
        raise MissingDependencyError("trawl.ingest", "ingest", purpose="indexing") from exc
    with _open(index, pipeline, default_host(), progress=not as_json, device=device) as t:
        extra: dict[str, Any] = {} if max_bytes is None else {"max_bytes": max_bytes}
        # a served folder is indexed by its server (RemoteTrawl.index_paths), same options
        run = t.index_paths if hasattr(t, "index_paths") else partial(index_paths, t)
        report = run(list(paths), include=include, exclude=exclude, prune=prune,
                     follow_symlinks=follow_symlinks, show_progress=not as_json,
                     encodings=encodings, include_hidden=hidden,
                     use_ignore_files=not no_ignore_files, **extra)
    if as_json:
        _echo_json(report.model_dump())
    else:
        summary = report.summary() if hasattr(report, "summary") else str(report)
        click.echo(safe_text(summary, multiline=True))
    if report.failed:
        # everything else was stored; a non-zero exit tells scripts the run was partial
        click.echo(f"warning: {len(report.failed)} document(s) were not stored (listed "
                   "above); fix them and run `trawl index` again", err=True)
        sys.exit(1)


@cli.command()
@click.argument("query")
@click.option("--index", "-i", "index", default=None, help="Index name or folder.")
@click.option("--top-k", "-k", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--where", "-w", multiple=True, help="Filter like year>=2020 (repeatable, AND).")
@click.option("--filter", "filter_json", default=None, help="Filter as JSON.")
@click.option("--retriever", "-r", "retrievers", multiple=True,
              help="Use only these retrievers (repeatable).")
@click.option("--fusion", type=click.Choice(["rrf", "weighted", "dbsf"]), default=None)
@click.option("--rerank/--no-rerank", default=None, help="Toggle the pipeline's reranker.")
@device_option
@click.option("--json", "as_json", is_flag=True)
def search(query: str, index: str | None, top_k: int, where: tuple[str, ...],
           filter_json: str | None, retrievers: tuple[str, ...], fusion: str | None,
           rerank: bool | None, device: str | None, as_json: bool) -> None:
    """Search an index and print the hits."""
    from .filters import parse_filter, parse_where, to_json

    filters: Any = None
    if filter_json:
        filters = parse_filter(_filter_object(filter_json))
    if where:
        try:
            extra = parse_where(list(where))
        except TrawlError as exc:
            raise click.BadParameter(str(exc), param_hint="--where") from exc
        filters = parse_filter({"and": [to_json(filters), to_json(extra)]}) if filters else extra
    from .pipeline import SearchTrace

    trace = SearchTrace()
    # a folder that `trawl serve` owns is searched through that server (same answers)
    with _open(index, None, default_host(), progress=False, create=False, device=device) as t:
        fusion_cfg = None
        if fusion:
            fusion_cfg = t.config.fusion.model_copy(update={"method": fusion})
        hits = t.search(query, top_k, filters, retrievers=list(retrievers) or None,
                        fusion=fusion_cfg, rerank=rerank, trace=trace)
    if as_json:
        _echo_json({"query": query, "latency_ms": round(trace.total_ms, 3),
                    "hits": [h.model_dump() for h in hits]})
        return
    from rich.console import Console
    from rich.text import Text

    # Everything from the index is untrusted: shown as Text (never parsed as markup) and
    # through safe_text (no control sequences reach the terminal).
    console = Console()
    if not hits:
        console.print(Text("no hits", style="yellow"))
    for h in hits:
        sources = "  ".join(f"{k}={v.score:.3f}(#{v.rank})" for k, v in h.scores_by_source.items())
        title = h.title or h.source or h.doc_id
        line = h.metadata.get("line_start")
        if isinstance(line, int) and h.source:  # source code and text: where to jump to
            symbol = h.metadata.get("symbol")
            title = f"{h.source}:{line}" + (f"  {symbol}" if isinstance(symbol, str) else "")
        console.print(Text.assemble((f"{h.rank:>2}.", "bold"), " ", (safe_text(title), "cyan"),
                                    f"  score={h.score:.4f}  ", (safe_text(sources), "dim")))
        snippet = " ".join(h.text.split())[:240]
        console.print(Text(f"    {safe_text(snippet)}"))
    console.print(Text(f"{len(hits)} hits in {trace.total_ms:.1f} ms", style="dim"))


def _filter_object(text: str) -> Any:
    """``--filter`` JSON: an object, with finite numbers only (``NaN`` is not JSON)."""
    def no_constant(name: str) -> Any:
        raise click.BadParameter(f"{name} is not a valid filter value (only finite numbers)",
                                 param_hint="--filter")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--filter") from exc
    if not isinstance(value, dict):
        raise click.BadParameter(f"expected a JSON object such as "
                                 f'{{"field": "year", "op": ">=", "value": 2020}}, got '
                                 f"{type(value).__name__}", param_hint="--filter")
    return value


@cli.command(name="eval")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--pipeline", "-p", default="hybrid", show_default=True,
              help=f"Preset ({', '.join(PRESETS)}) or TOML file.")
@click.option("--index", "-i", "index", default=None,
              help="Index folder to (re)use; default: a cache folder per dataset and pipeline.")
@click.option("--run-file", type=click.Path(path_type=Path), default=None,
              help="Where to write the TREC run (default: next to the index).")
@click.option("--fusion", type=click.Choice(["rrf", "weighted", "dbsf"]), default=None)
@click.option("--rrf-k", type=click.FloatRange(min=0), default=None, callback=_check_finite)
@click.option("--max-queries", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N queries.")
@device_option
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(dataset_dir: Path, pipeline: str, index: str | None, run_file: Path | None,
             fusion: str | None, rrf_k: float | None, max_queries: int | None,
             device: str | None, as_json: bool) -> None:
    """Index a BEIR-layout dataset with a pipeline and report nDCG@10, Recall, MRR, latency."""
    from .api import Trawl
    from .config import load_pipeline
    from .evaluation import eval_index_folder, evaluate, load_beir

    settings = TrawlSettings()
    config = load_pipeline(pipeline)
    dataset = load_beir(dataset_dir).head(max_queries)
    folder = Path(index) if index else eval_index_folder(settings.cache_dir, dataset.name, config)
    progress = not as_json
    with Trawl(folder, config, host=default_host(), settings=settings,
               show_progress=progress, component_settings=device_settings(device)) as t:
        if not as_json:
            click.echo(safe_text(f"indexing {dataset.path} into {folder} (unchanged documents "
                                 "are skipped)"), err=True)
        t.add(dataset.corpus(), batch_size=128)
        fusion_cfg: FusionConfig | None = None
        if fusion or rrf_k is not None:
            fusion_cfg = t.pipeline.config.fusion.model_copy(update={
                k: v for k, v in {"method": fusion, "k": rrf_k}.items() if v is not None})
        run_path = run_file or folder / f"run-{config.name}.trec"
        result = evaluate(lambda q, k: t.search(q, k, fusion=fusion_cfg), dataset,
                          pipeline_name=config.name, run_file=run_path)
    data = result.to_json()
    if as_json:
        _echo_json(data)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(safe_text(f"{dataset.name} · {config.name} · "
                                       f"{result.queries} queries")))
    for col in ("nDCG@10", "Recall@10", "Recall@100", "MRR@10", "p50 ms", "p95 ms"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{data[k]:.4f}" for k in ("ndcg@10", "recall@10", "recall@100", "mrr@10")),
                  f"{data['latency_ms_p50']:.1f}", f"{data['latency_ms_p95']:.1f}")
    Console().print(table)
    click.echo(safe_text(f"run file: {run_path}"))


@cli.command()
@click.option("--index", "-i", "index", default=None)
@click.option("--json", "as_json", is_flag=True)
def stats(index: str | None, as_json: bool) -> None:
    """Documents, chunks per retriever, disk size and pipeline of an index."""
    with _open(index, None, default_host(), progress=False, create=False) as t:
        data = t.stats()
    if as_json:
        _echo_json(data)
    else:
        for k, v in data.items():
            if k in ("disk_bytes", "apparent_bytes") and isinstance(v, int):
                v = f"{v} ({_human_bytes(v)}{' allocated on disk' if k == 'disk_bytes' else ''})"
            click.echo(safe_text(f"{k}: {v}"))


def _human_bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def _show_traceback(exc: BaseException) -> None:
    """The chained traceback, and each failed plugin's own one (``--traceback``)."""
    import traceback

    parts = ["".join(traceback.format_exception(exc))]
    if isinstance(exc, UnknownComponentError):
        parts += [f"plugin {e.entry_point!r} failed to load:\n{e.traceback}"
                  for e in exc.plugin_errors]
    click.echo(safe_text("\n".join(parts), multiline=True), err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: errors become one clear line on stderr (exit 1; usage errors exit 2)."""
    try:
        status = cli.main(args=argv, prog_name="trawl", standalone_mode=False)
        if isinstance(status, int) and status:  # ctx.exit(N) returns N without standalone
            sys.exit(status)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # click >= 8.2: bare `trawl` shows help
            exc.show()
            sys.exit(exc.exit_code)
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"Error: {safe_text(exc.format_message())}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"Error: {safe_text(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except TrawlError as exc:
        hint = ""
        if _Debug.enabled:
            _show_traceback(exc)
        elif isinstance(exc, PluginLoadError) or (
                isinstance(exc, UnknownComponentError) and exc.plugin_errors):
            hint = " (trawl --traceback shows the plugin's traceback)"
        click.echo(f"Error ({exc.title}): {safe_text(exc)}{hint}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except OSError as exc:
        if _Debug.enabled:
            _show_traceback(exc)
        click.echo(f"Error: {safe_text(exc)}", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
