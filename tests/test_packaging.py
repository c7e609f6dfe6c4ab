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
