"""The ``trawl`` command line: a thin client of the ``Trawl`` API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from .config import PRESETS, FusionConfig, TrawlSettings
from .errors import MissingDependencyError, TrawlError
from .plugins import PluginHost, default_host


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _open(index: str | None, pipeline: str | None, host: PluginHost, progress: bool = True,
          create: bool = True) -> Any:
    from .api import Trawl

    return Trawl.open(index, pipeline=pipeline, host=host, show_progress=progress, create=create)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trawl")
def cli() -> None:
    """trawl: plugin-based retrieval for RAG (BM25, dense, hybrid, MUVERA multi-vector)."""


@cli.command(name="plugins")
@click.option("--all", "show_all", is_flag=True, help="Include core's own components.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_cmd(show_all: bool, as_json: bool) -> None:
    """List installed plugins, their components and load errors (imports no backend)."""
    infos = default_host().plugin_infos(include_core=show_all)
    if as_json:
        _echo_json([i.to_json() for i in infos])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("plugin", "distribution", "version", "components", "status")
    for i in infos:
        comps = ", ".join(f"{c['kind']}:{c['name']}" for c in i.components) or "-"
        status = f"[red]error: {i.error}[/red]" if i.error else "ok"
        table.add_row(i.name, i.distribution, i.version, comps, status)
    Console().print(table)


def _pip(args: list[str]) -> None:
    """Run pip in trawl's own interpreter (so plugins land where trawl can find them)."""
    cmd = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"pip exited with status {result.returncode}: {' '.join(cmd)}")


@cli.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-e", "--editable", is_flag=True, help="Install a local folder in editable mode.")
@click.option("-U", "--upgrade", is_flag=True)
@click.option("--no-deps", is_flag=True, help="Do not install the plugin's dependencies.")
def install(packages: tuple[str, ...], editable: bool, upgrade: bool, no_deps: bool) -> None:
    """Install plugins (PyPI names or local folders) into trawl's environment."""
    args = ["install"]
    if upgrade:
        args.append("--upgrade")
    if no_deps:
        args.append("--no-deps")
    for p in packages:
        args += ["-e", p] if editable else [p]
    _pip(args)


@cli.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def uninstall(packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugins (works even while a plugin is broken: it never imports them)."""
    _pip(["uninstall", *(["-y"] if yes else []), *packages])


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--index", "-i", "index", default=None, help="Index name or folder.")
@click.option("--pipeline", "-p", default=None,
              help=f"Preset ({', '.join(PRESETS)}) or TOML file, for a new index.")
@click.option("--include", multiple=True, help="Glob of files to include (repeatable).")
@click.option("--exclude", multiple=True, help="Glob of files to skip (repeatable).")
@click.option("--prune", is_flag=True, help="Remove documents whose files are gone.")
@click.option("--follow-symlinks", is_flag=True, help="Follow symlinks out of the given roots.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=None,
              help="Skip files larger than this many bytes (default 32 MiB).")
@click.option("--encoding", "encodings", multiple=True,
              help="Encoding to try for files that are not UTF-8 (repeatable, in order).")
@click.option("--hidden", is_flag=True, help="Also index hidden files and folders.")
@click.option("--no-ignore-files", is_flag=True, help="Do not read .gitignore/.trawlignore.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def index(paths: tuple[Path, ...], index: str | None, pipeline: str | None,
          include: tuple[str, ...], exclude: tuple[str, ...], prune: bool,
          follow_symlinks: bool, max_bytes: int | None, encodings: tuple[str, ...],
          hidden: bool, no_ignore_files: bool, as_json: bool) -> None:
    """Index files and folders (txt, md, html, pdf, jsonl, BEIR corpus.jsonl)."""
    try:
        from .ingest import index_paths
    except ImportError as exc:  # pragma: no cover - only before ingestion lands
        raise MissingDependencyError("trawl.ingest", "ingest", purpose="indexing") from exc
    with _open(index, pipeline, default_host(), progress=not as_json) as t:
        extra: dict[str, Any] = {} if max_bytes is None else {"max_bytes": max_bytes}
        report = index_paths(t, list(paths), include=include, exclude=exclude, prune=prune,
                             follow_symlinks=follow_symlinks, show_progress=not as_json,
                             encodings=encodings, include_hidden=hidden,
                             use_ignore_files=not no_ignore_files, **extra)
    if as_json:
        _echo_json(report.model_dump())
    else:
        click.echo(report.summary() if hasattr(report, "summary") else str(report))


@cli.command()
@click.argument("query")
@click.option("--index", "-i", "index", default=None, help="Index name or folder.")
@click.option("--top-k", "-k", default=10, show_default=True, type=int)
@click.option("--where", "-w", multiple=True, help="Filter like year>=2020 (repeatable, AND).")
@click.option("--filter", "filter_json", default=None, help="Filter as JSON.")
@click.option("--retriever", "-r", "retrievers", multiple=True,
              help="Use only these retrievers (repeatable).")
@click.option("--fusion", type=click.Choice(["rrf", "weighted", "dbsf"]), default=None)
@click.option("--rerank/--no-rerank", default=None, help="Toggle the pipeline's reranker.")
@click.option("--json", "as_json", is_flag=True)
def search(query: str, index: str | None, top_k: int, where: tuple[str, ...],
           filter_json: str | None, retrievers: tuple[str, ...], fusion: str | None,
           rerank: bool | None, as_json: bool) -> None:
    """Search an index and print the hits."""
    from .filters import parse_filter, parse_where, to_json

    filters: Any = None
    if filter_json:
        try:
            filters = parse_filter(json.loads(filter_json))
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--filter") from exc
    if where:
        extra = parse_where(list(where))
        filters = parse_filter({"and": [to_json(filters), to_json(extra)]}) if filters else extra
    with _open(index, None, default_host(), progress=False, create=False) as t:
        fusion_cfg = None
        if fusion:
            fusion_cfg = t.pipeline.config.fusion.model_copy(update={"method": fusion})
        hits = t.search(query, top_k, filters, retrievers=list(retrievers) or None,
                        fusion=fusion_cfg, rerank=rerank)
        trace = t.last_trace
    if as_json:
        _echo_json({"query": query, "latency_ms": round(trace.total_ms, 3),
                    "hits": [h.model_dump() for h in hits]})
        return
    from rich.console import Console

    console = Console()
    if not hits:
        console.print("[yellow]no hits[/yellow]")
    for h in hits:
        sources = "  ".join(f"{k}={v.score:.3f}(#{v.rank})" for k, v in h.scores_by_source.items())
        title = h.title or h.source or h.doc_id
        console.print(f"[bold]{h.rank:>2}.[/bold] [cyan]{title}[/cyan]  score={h.score:.4f}  "
                      f"[dim]{sources}[/dim]")
        snippet = " ".join(h.text.split())[:240]
        console.print(f"    {snippet}", markup=False, highlight=False)
    console.print(f"[dim]{len(hits)} hits in {trace.total_ms:.1f} ms[/dim]")


@cli.command(name="eval")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--pipeline", "-p", default="hybrid", show_default=True,
              help=f"Preset ({', '.join(PRESETS)}) or TOML file.")
@click.option("--index", "-i", "index", default=None,
              help="Index folder to (re)use; default: a cache folder per dataset and pipeline.")
@click.option("--run-file", type=click.Path(path_type=Path), default=None,
              help="Where to write the TREC run (default: next to the index).")
@click.option("--fusion", type=click.Choice(["rrf", "weighted", "dbsf"]), default=None)
@click.option("--rrf-k", type=float, default=None)
@click.option("--max-queries", type=int, default=None, help="Evaluate only the first N queries.")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(dataset_dir: Path, pipeline: str, index: str | None, run_file: Path | None,
             fusion: str | None, rrf_k: float | None, max_queries: int | None,
             as_json: bool) -> None:
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
               show_progress=progress) as t:
        if not as_json:
            click.echo(f"indexing {dataset.path} into {folder} (unchanged documents are skipped)",
                       err=True)
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

    table = Table(title=f"{dataset.name} · {config.name} · {result.queries} queries")
    for col in ("nDCG@10", "Recall@10", "Recall@100", "MRR@10", "p50 ms", "p95 ms"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{data[k]:.4f}" for k in ("ndcg@10", "recall@10", "recall@100", "mrr@10")),
                  f"{data['latency_ms_p50']:.1f}", f"{data['latency_ms_p95']:.1f}")
    Console().print(table)
    click.echo(f"run file: {run_path}")


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
            click.echo(f"{k}: {v}")


@cli.command()
@click.argument("index", required=False)
@click.option("--pipeline", "-p", default=None, help="Pipeline for a new index.")
def tui(index: str | None, pipeline: str | None) -> None:
    """Open the terminal UI on an index (the default index if none is given)."""
    try:
        from trawl_tui.app import run
    except ImportError as exc:
        raise MissingDependencyError("textual", "tui", purpose="the terminal UI") from exc
    run(index, pipeline)


def _add_plugin_commands(group: click.Group, host: PluginHost) -> None:
    """Let plugins add subcommands; a plugin failing here is reported, not fatal."""
    for impl in host.pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=group)
        except Exception as exc:
            click.echo(f"warning: plugin {impl.plugin_name!r} failed to add commands: {exc}",
                       err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: TrawlErrors become one clear line on stderr and exit status 1."""
    try:
        _add_plugin_commands(cli, default_host())
        cli.main(args=argv, prog_name="trawl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TrawlError as exc:
        click.echo(f"Error ({exc.title}): {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except OSError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
