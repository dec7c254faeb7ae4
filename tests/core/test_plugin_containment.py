"""A broken plugin (exits, raises BaseException, hangs) cannot take the CLI down, and the
commands that need no plugin never import one. Every plugin here is a real installed-looking
distribution (``write_fake_plugin``) that the real ``trawl`` process discovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trawl
from trawl.errors import InputError, UnknownComponentError
from trawl.testing import write_fake_plugin

needs_bm25 = pytest.mark.skipif("bm25" not in trawl.PluginHost().registry.names("index"),
                                reason="trawl_bm25 plugin not available")

HELLO = """
import click
import trawl

@trawl.hookimpl
def register_commands(cli):
    @cli.command("hello")
    @click.argument("who")
    @click.pass_context
    def hello(ctx, who):
        '''Greet WHO (a plugin command).'''
        click.echo(f"hello {who}")
        if who == "nobody":
            ctx.exit(3)
"""


def _trawl(*args: str, site: Path, home: Path, timeout: float = 60, **env: str
           ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "TRAWL_HOME": str(home), "TRAWL_CACHE_DIR": str(home / "cache"),
                "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
                **env}
    return subprocess.run([sys.executable, "-m", "trawl.cli", *args], capture_output=True,
                          text=True, env=full_env, check=False, stdin=subprocess.DEVNULL,
                          timeout=timeout)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    write_fake_plugin(root, "trawl-hello", "hello", "trawl_hello_mod", HELLO)
    return root


@pytest.fixture
def bm25_index(tmp_path: Path) -> Path:
    index = tmp_path / "idx"
    with trawl.Trawl.open(index, pipeline="bm25", show_progress=False) as t:
        t.add([{"id": "a", "text": "turbine blade fatigue"}])
    return index


def _killer(how: str, where: str) -> str:
    if where == "import":
        return f"import os, sys\n{how}\n"
    return f"import os, sys, trawl\n\n@trawl.hookimpl\ndef register_commands(cli):\n    {how}\n"


KILLERS = {"os._exit(7)": "ended the process with exit status 7",
           "sys.exit(4)": "called sys.exit(4)",
           "raise KeyboardInterrupt": "raised KeyboardInterrupt",
           "raise BaseException('deep')": "BaseException: deep"}


def test_diagnostics_name_every_plugin_that_exits_or_interrupts(site: Path,
                                                                 tmp_path: Path) -> None:
    expected = {}
    for i, (how, message) in enumerate(KILLERS.items()):
        for where in ("import", "register_commands"):
            name = f"killer-{where}-{i}"
            write_fake_plugin(site, f"trawl-{name}", name, f"trawl_killer_{where}_{i}",
                              _killer(how, where))
            expected[name] = (f"trawl-{name}", where, message)
    listed = _trawl("plugins", "--json", site=site, home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    for name, (dist, where, message) in expected.items():
        assert plugins[name]["distribution"] == dist
        assert where in plugins[name]["error"] and message in plugins[name]["error"], name
    assert plugins["hello"]["error"] is None and plugins["hello"]["commands"] == ["hello"]
    assert plugins["bm25"]["error"] is None


@needs_bm25
def test_commands_survive_plugins_that_exit_or_interrupt(site: Path, tmp_path: Path,
                                                         bm25_index: Path) -> None:
    for i, how in enumerate(KILLERS):
        for where in ("import", "register_commands"):
            write_fake_plugin(site, f"trawl-killer-{where}-{i}", f"killer-{where}-{i}",
                              f"trawl_killer_{where}_{i}", _killer(how, where))
    helped = _trawl("--help", site=site, home=tmp_path)
    assert helped.returncode == 0 and "hello" in helped.stdout
    assert "killer-import-0" in helped.stdout
    refused = _trawl("uninstall", "-y", "trawl", site=site, home=tmp_path)
    assert refused.returncode == 1 and "trawl itself" in refused.stderr
    # commands that need plugins load them in-process: every failure is contained there,
    # os._exit included (the CLI's host turns it into an exception while plugin code runs)
    found = _trawl("search", "turbine", "--index", str(bm25_index), "--json", site=site,
                   home=tmp_path)
    assert found.returncode == 0, found.stderr
    assert [h["doc_id"] for h in json.loads(found.stdout)["hits"]] == ["a"]
    greeted = _trawl("hello", "you", site=site, home=tmp_path)
    assert greeted.returncode == 0 and greeted.stdout == "hello you\n", greeted.stderr
    unknown = _trawl("nosuchcommand", site=site, home=tmp_path)
    assert unknown.returncode == 2 and "'killer-import-0'" in unknown.stderr
    assert "called os._exit(7)" in unknown.stderr


def test_os_exit_is_contained_only_in_the_cli_host_and_only_in_its_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    status_file = tmp_path / "child-status"
    write_fake_plugin(site, "trawl-forker", "forker", "trawl_forker_mod", f"""
        import os
        pid = os.fork()
        if pid == 0:
            os._exit(3)  # a child the plugin forks still really exits
        _, status = os.waitpid(pid, 0)
        open({str(status_file)!r}, "w").write(str(os.waitstatus_to_exitcode(status)))
        os._exit(9)
    """)
    monkeypatch.syspath_prepend(str(site))
    host = trawl.PluginHost(contain=True, load={"forker"})
    (error,) = host.load_errors
    assert error.entry_point == "forker" and "called os._exit(9)" in str(error)
    assert status_file.read_text() == "3"
    assert os._exit.__module__ == "posix"  # restored once the plugin's code is done


def test_a_plugin_that_hangs_is_named_and_skipped(site: Path, tmp_path: Path) -> None:
    write_fake_plugin(site, "trawl-sloth", "sloth", "trawl_sloth_mod",
                      "import time\ntime.sleep(60)\n")
    start = time.monotonic()
    listed = _trawl("plugins", "--json", site=site, home=tmp_path, TRAWL_PLUGIN_TIMEOUT="1.5")
    assert time.monotonic() - start < 30
    assert listed.returncode == 0, listed.stderr
    sloth = next(p for p in json.loads(listed.stdout) if p["name"] == "sloth")
    assert "did not finish import within 1.5 s" in sloth["error"]
    assert any(p["name"] == "hello" and p["error"] is None for p in json.loads(listed.stdout))
    helped = _trawl("--help", site=site, home=tmp_path, TRAWL_PLUGIN_TIMEOUT="1.5")
    assert helped.returncode == 0 and "hello" in helped.stdout


def test_core_commands_import_no_plugin_and_plugin_commands_load_lazily(
        site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported-by"
    # records the parent of the importing process: this test's pid when the `trawl`
    # process itself imports the plugin, trawl's pid when its isolated probe does
    write_fake_plugin(site, "trawl-marker", "marker", "trawl_marker_mod",
                      f"import os\nopen({str(marker)!r}, 'a').write(f'{{os.getppid()}}\\n')\n")

    def imported_in_trawl_process() -> bool:
        return marker.exists() and str(os.getpid()) in marker.read_text().split()

    for args in (["uninstall", "-y", "nosuchplugin"], ["plugins", "--json"], ["--help"]):
        _trawl(*args, site=site, home=tmp_path)
        assert not imported_in_trawl_process(), args
    assert marker.exists()  # `plugins` and `--help` imported it, in their child process
    greeted = _trawl("hello", "world", site=site, home=tmp_path)
    assert greeted.returncode == 0 and greeted.stdout == "hello world\n"
    assert _trawl("hello", "nobody", site=site, home=tmp_path).returncode == 3  # ctx.exit(3)
    assert imported_in_trawl_process()  # an unknown subcommand loads plugins to find it
    unknown = _trawl("nosuchcommand", site=site, home=tmp_path)
    assert unknown.returncode == 2 and "No such command 'nosuchcommand'" in unknown.stderr


def test_plugin_command_cannot_replace_a_core_command(site: Path, tmp_path: Path) -> None:
    write_fake_plugin(site, "trawl-hijack", "hijack", "trawl_hijack_mod", """
        import click, trawl

        @trawl.hookimpl
        def register_commands(cli):
            @cli.command("search")
            def search():
                click.echo("hijacked")
    """)
    out = _trawl("search", "x", "--index", str(tmp_path / "none"), site=site, home=tmp_path)
    assert "hijacked" not in out.stdout and "no trawl index" in out.stderr


def test_unknown_component_names_the_plugin_that_failed(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    write_fake_plugin(site, "trawl-foo", "foo", "trawl_foo_mod",
                      "import trawl_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(site))
    host = trawl.PluginHost()
    with pytest.raises(UnknownComponentError) as info:
        host.registry.get("encoder", "foo-encoder")
    msg = str(info.value)
    assert "no encoder named 'foo-encoder'" in msg
    assert ("plugin 'foo' (distribution 'trawl-foo') failed to load in import: "
            "ModuleNotFoundError") in msg
    assert info.value.plugin_errors[0].entry_point == "foo"
    assert "trawl_foo_mod.py" in info.value.plugin_errors[0].traceback


def test_traceback_flag_shows_the_plugins_own_traceback(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_fake_plugin(site, "trawl-foo", "foo", "trawl_foo_mod",
                      "def broken():\n    raise ImportError('needs libfoo')\nbroken()\n")
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('name = "p"\n[[retrievers]]\nname = "d"\nindex = "exact"\n'
                        'encoder = "foo-encoder"\n', encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("hello", encoding="utf-8")
    args = ("index", str(docs), "--index", str(tmp_path / "idx"), "--pipeline", str(pipeline))
    plain = _trawl(*args, site=site, home=tmp_path)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert "plugin 'foo' (distribution 'trawl-foo') failed to load" in plain.stderr
    assert "needs libfoo" in plain.stderr and "--traceback" in plain.stderr
    for extra_args, env in ((("--traceback",), {}), ((), {"TRAWL_DEBUG": "1"})):
        debug = _trawl(*extra_args, *args, site=site, home=tmp_path, **env)
        assert debug.returncode == 1
        assert "Traceback" in debug.stderr and "trawl_foo_mod.py" in debug.stderr
        assert "in broken" in debug.stderr
    # the failed create left no index folder behind
    assert not (tmp_path / "idx").exists()


def test_uninstall_checks_names_before_calling_pip(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from trawl.distribution import normalize, own_distribution_name
    from trawl.lifecycle import protected_distributions, resolve_uninstall

    site = tmp_path / "site"
    write_fake_plugin(site, "trawl-foo", "foo-ep", "trawl_foo_mod", "")
    monkeypatch.syspath_prepend(str(site))
    assert [(t.distribution, t.plugins) for t in resolve_uninstall(["foo-ep", "trawl_foo"])] == [
        ("trawl-foo", ("foo-ep",))]
    keep = protected_distributions()
    assert {normalize(own_distribution_name()), "pip", "pydantic", "pydantic-core", "click", "numpy"} <= keep
    for name, reason in (("trawl", "trawl itself"), ("pydantic", "trawl needs"),
                         ("bm25", "built-in plugin"), ("nosuchthing", "not installed"),
                         ("pytest", "not a trawl plugin")):
        with pytest.raises(InputError, match=reason):
            resolve_uninstall(["foo-ep", name])


def test_uninstall_cli_exit_codes_and_confirmation(site: Path, tmp_path: Path) -> None:
    missing = _trawl("uninstall", "-y", "nosuchthing", site=site, home=tmp_path)
    assert missing.returncode == 1 and "'nosuchthing' is not installed" in missing.stderr
    builtin = _trawl("uninstall", "-y", "bm25", site=site, home=tmp_path)
    assert builtin.returncode == 1 and "TRAWL_DISABLE_PLUGINS=bm25" in builtin.stderr
    no_tty = _trawl("uninstall", "hello", site=site, home=tmp_path)  # stdin is /dev/null
    assert no_tty.returncode == 1 and "EOFError" not in no_tty.stderr
    assert "stdin is not a terminal; pass -y" in no_tty.stderr and "trawl-hello" in no_tty.stderr
    assert len(no_tty.stderr.strip().splitlines()) == 1
    assert (site / "trawl_hello_mod.py").exists()


def test_uninstall_removes_a_plugin_by_its_entry_point_name(tmp_path: Path) -> None:
    import shutil
    import tempfile

    # pip only removes distributions inside its environment: a site folder under sys.prefix
    site = Path(tempfile.mkdtemp(prefix="trawl-uninstall-test-", dir=sys.prefix))
    try:
        write_fake_plugin(site, "trawl-byebye", "byebye", "trawl_byebye_mod", "")
        info = site / "trawl_byebye-0.3.1.dist-info"
        files = ["trawl_byebye_mod.py", *(f"{info.name}/{f.name}" for f in info.iterdir()),
                 f"{info.name}/RECORD"]
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in files), encoding="utf-8")
        gone = _trawl("uninstall", "-y", "byebye", site=site, home=tmp_path)
        assert gone.returncode == 0, gone.stderr
        assert not (site / "trawl_byebye_mod.py").exists() and not info.exists()
        again = _trawl("uninstall", "-y", "byebye", site=site, home=tmp_path)
        assert again.returncode == 1 and "'byebye' is not installed" in again.stderr
    finally:
        shutil.rmtree(site, ignore_errors=True)


def test_uninstall_fails_when_pip_declines(site: Path, tmp_path: Path) -> None:
    out = _trawl("uninstall", "-y", "hello", site=site, home=tmp_path)  # outside the venv
    assert out.returncode == 1 and "pip did not remove trawl-hello" in out.stderr
    assert (site / "trawl_hello_mod.py").exists()


@needs_bm25
def test_ctrl_c_skips_a_plugin_that_hangs_in_process(site: Path, tmp_path: Path,
                                                    bm25_index: Path) -> None:
    import signal

    write_fake_plugin(site, "trawl-sloth", "sloth", "trawl_sloth_mod",
                      "import time\ntime.sleep(120)\n")
    env = {**os.environ, "TRAWL_HOME": str(tmp_path), "TRAWL_PLUGIN_SLOW_S": "0.5",
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "trawl.cli", "search", "turbine", "--index",
                             str(bm25_index), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stderr is not None
        warning = proc.stderr.readline()  # blocks until the slow-plugin warning
        assert "plugin 'sloth' (distribution 'trawl-sloth') is still in import" in warning
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert [h["doc_id"] for h in json.loads(out)["hits"]] == ["a"]


@needs_bm25
def test_a_plugin_that_hangs_in_process_times_out(site: Path, tmp_path: Path,
                                                  bm25_index: Path) -> None:
    write_fake_plugin(site, "trawl-sloth", "sloth", "trawl_sloth_mod",
                      "import time\ntime.sleep(120)\n")
    write_fake_plugin(site, "trawl-spinner", "spinner", "trawl_spinner_mod", """
        import trawl

        @trawl.hookimpl
        def register_commands(cli):
            while True:
                pass
    """)
    start = time.monotonic()
    found = _trawl("search", "turbine", "--index", str(bm25_index), "--json", site=site,
                   home=tmp_path, TRAWL_PLUGIN_TIMEOUT="2", TRAWL_PLUGIN_SLOW_S="60")
    assert found.returncode == 0, found.stderr
    assert [h["doc_id"] for h in json.loads(found.stdout)["hits"]] == ["a"]
    unknown = _trawl("nosuchcommand", site=site, home=tmp_path, TRAWL_PLUGIN_TIMEOUT="2",
                     TRAWL_PLUGIN_SLOW_S="60")
    assert unknown.returncode == 2
    assert "'sloth'" in unknown.stderr and "did not finish import within 2 s" in unknown.stderr
    assert "'spinner'" in unknown.stderr
    assert "did not finish register_commands within 2 s" in unknown.stderr
    assert time.monotonic() - start < 60
