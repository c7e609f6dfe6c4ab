"""An s3:// store works for every command, against a real S3-compatible server on loopback (moto)."""

import json
import shutil

import pytest

from helpers import SAMPLE_DOCS, StoreCli, race_alias_switches, write_jsonl
from embedops.errors import ChecksumMismatchError
from embedops.registry import Registry
from embedops.registry.aliases import AliasRegistry
from embedops.store import Store


def test_every_command_works_on_an_s3_store(s3_uri, tiny_model_dir, tmp_path):
    cli = StoreCli(s3_uri)
    docs = write_jsonl(tmp_path / "docs.jsonl", SAMPLE_DOCS)
    cli("corpus", "add", "ops", docs)
    assert "tiny@1" in cli("model", "register", "tiny", tiny_model_dir).stdout
    first = cli("index", "build", "tiny@1", "--corpus", "ops").stdout.strip()
    assert "production -> " in cli("promote", first, "--force", "--reason", "initial").stdout
    hits = json.loads(cli("search", "kafka lag", "-k", "3", "--json").stdout)
    assert hits["index_id"] == first and len(hits["hits"]) == 3

    # Another machine: nothing local but the URI. Artifacts come down verified; state is shared.
    shutil.rmtree(tmp_path / "cache")
    second = cli("index", "build", "tiny@1", "--corpus", "ops").stdout.strip()
    assert second != first
    cli("promote", second, "--expect", first, "--force", "--reason", "rebuilt")
    assert "rolled back" in cli("rollback", "--reason", "test").stdout
    assert json.loads(cli("alias", "show", "production", "--json").stdout)["value"] == first
    status = json.loads(cli("status", "--json").stdout)
    assert status["store"] == s3_uri
    history = [e["action"] for e in json.loads(cli("history", "--json").stdout)]
    assert "alias.rollback" in history and history.count("promote.override") == 2

    # Everything lives in the bucket, under the prefix.
    import boto3

    bucket = s3_uri.split("/")[2]
    keys = [o["Key"] for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    assert all(k.startswith("team/store/") for k in keys)
    assert "team/store/embedops.json" in keys and any(k.startswith("team/store/refs/aliases/production/") for k in keys)
    assert any(k.startswith("team/store/artifacts/models/") and k.endswith(".safetensors") for k in keys)


def test_tampered_artifact_in_the_bucket_is_refused(s3_uri, tiny_model_dir, tmp_path):
    import boto3

    reg = Registry(Store.open(s3_uri))
    model = reg.models.register("tiny", tiny_model_dir)
    bucket, prefix = s3_uri[5:].split("/", 1)
    weights = next(f.path for f in model.files if f.path.endswith(".safetensors"))
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{model.artifact}/{weights}", Body=b"not the weights")
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        Registry(Store.open(s3_uri)).models.verified_path("tiny@1")


def test_processes_racing_on_an_s3_alias_have_exactly_one_winner(s3_uri):
    AliasRegistry(Store.open(s3_uri))._switch("production", "idx-start")
    outcomes = race_alias_switches(s3_uri, 4)
    winners = [i for i, o in outcomes.items() if o == "won"]
    assert len(winners) == 1, outcomes
    hist = AliasRegistry(Store.open(s3_uri)).history("production")
    assert [h.seq for h in hist] == [1, 2] and hist[-1].value == f"idx-{winners[0]}"


def test_s3_store_migrates_under_a_lock_object_and_releases_it(s3_uri):
    from embedops.store import Migration

    Store.open(s3_uri)
    applied = []
    migration = Migration(1, "add a column", lambda store: applied.append(store.uri))
    store = Store.open(s3_uri, schema_version=2, migrations=(migration,))
    assert applied == [s3_uri] and store._read_meta()["schema_version"] == 2
    assert store.objects.read(".lock") is None  # released: the next process is not blocked
    assert Store.open(s3_uri, schema_version=2, migrations=(migration,)) and applied == [s3_uri]


def test_artifact_row_pointing_outside_the_store_is_refused_before_anything_is_written(s3_uri, tiny_model_dir, tmp_path):
    from embedops.errors import UnsafePathError

    reg = Registry(Store.open(s3_uri))
    model = reg.models.register("tiny", tiny_model_dir)
    shutil.rmtree(tmp_path / "cache")  # a second machine: every artifact file would be downloaded
    files = [f.to_dict() for f in model.files]
    files[0]["path"] = "../../../../escaped.txt"
    reg.models._table().update(where="name = 'tiny'", values={"files": json.dumps(files)})
    fresh = Registry(Store.open(s3_uri))
    with pytest.raises(UnsafePathError, match="escaped.txt"):
        fresh.models.verified_path("tiny@1")
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not [p for p in (fresh.store.root / "artifacts").rglob("*") if p.is_file()]  # nothing was downloaded

    reg.models._table().update(where="name = 'tiny'", values={
        "artifact": "../../elsewhere", "files": json.dumps([f.to_dict() for f in model.files])})
    with pytest.raises(UnsafePathError, match="not artifacts/<kind>/<sha256>"):
        Registry(Store.open(s3_uri)).models.verified_path("tiny@1")
    assert not list(tmp_path.rglob("elsewhere"))
