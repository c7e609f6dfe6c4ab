import pytest

from helpers import StoreCli, write_jsonl

from reembed_helpers import make_docs  # noqa: F401  (re-exported for tests)


@pytest.fixture
def docs_file(tmp_path):
    return write_jsonl(tmp_path / "docs.jsonl", make_docs(40))


@pytest.fixture
def cli_for():
    """CLI runner bound to a registry's store."""
    return lambda reg: StoreCli(str(reg.store.root))
