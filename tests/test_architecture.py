"""The layers hold (import-linter, configured in pyproject.toml): cli > app > stages > registry >
index, encoding > core, the stages independent of each other. A wrong arrow fails here."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(package_parent)}
    return subprocess.run(LINT + ["--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=package_parent,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_are_kept():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("probe, importer", [
    ("from embedops.reembed import IndexBuild\n", "embedops/trainer/_probe.py"),  # stage -> stage
    ("import embedops.app.pipeline\n", "embedops/registry/_probe.py"),  # registry -> app (upward)
    ("from embedops.registry import Registry\n", "embedops/index/_probe.py"),  # index -> registry (upward)
    ("import embedops.guards\n", "embedops/corpus_probe.py"),  # core -> stage
])
def test_a_wrong_arrow_breaks_a_contract(tmp_path, probe, importer):
    copy = tmp_path / "src"
    shutil.copytree(REPO / "embedops", copy / "embedops", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / importer).write_text(probe)
    if importer == "embedops/corpus_probe.py":  # a core module: make the probe one of the listed sources
        (copy / "embedops" / "corpus.py").write_text((copy / "embedops" / "corpus.py").read_text()
                                                     + "\nfrom embedops import corpus_probe  # noqa\n")
    result = _lint(copy)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout + result.stderr
    assert importer.removesuffix(".py").replace("/", ".") in result.stdout


def test_static_tools_see_every_module_under_its_import_name():
    import grimp

    graph = grimp.build_graph("embedops")
    on_disk = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
               for p in (REPO / "embedops").rglob("*.py") if "__pycache__" not in p.parts}
    assert on_disk - graph.modules == set()
    assert {"embedops.trainer.mining", "embedops.guards.run", "embedops.reembed.build",
            "embedops.registry.promotion"} <= graph.modules
    for folder in ("registry", "reembed", "trainer", "guards"):  # the design card's folders, at the root
        assert (REPO / folder).resolve() == (REPO / "embedops" / folder).resolve()
