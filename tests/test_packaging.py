"""The project installs as one namespace and never shadows other packages' top-level names."""

import importlib.util
from pathlib import Path

import embedops


def test_stages_import_as_subpackages_of_embedops():
    from embedops import guards, reembed, registry, trainer  # noqa: F401

    assert Path(registry.__file__).parent.name == "registry"
    assert registry.Registry is not None


def test_no_top_level_stage_modules_are_installed():
    for name in ("registry", "reembed", "trainer", "guards"):
        spec = importlib.util.find_spec(name)
        # Running from the repo root puts the folders on sys.path as plain directories; an
        # installed top-level module would instead resolve into site-packages.
        assert spec is None or "site-packages" not in str(spec.origin or spec.submodule_search_locations), name


def test_version_is_exposed():
    assert embedops.__version__.count(".") == 2


def test_a_wheel_installs_only_embedops_with_every_layer(tmp_path):
    """The root folders are links into embedops/: the wheel has one top-level package, whole."""
    import subprocess
    import sys
    import zipfile

    from helpers import REPO

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    names = zipfile.ZipFile(next(tmp_path.glob("embedops-*.whl"))).namelist()
    assert {n.split("/")[0] for n in names} == {"embedops", f"embedops-{embedops.__version__}.dist-info"}
    for module in ("registry/promotion.py", "reembed/build.py", "trainer/mining.py", "guards/run.py",
                   "index/reader.py", "encoding/encoder.py", "app/pipeline/run.py", "cli/__init__.py"):
        assert f"embedops/{module}" in names, module
