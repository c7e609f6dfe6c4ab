import json

import pytest

from helpers import SAMPLE_DOCS, write_jsonl
from embedops.corpus import CorpusStore, read_documents
from embedops.errors import CorpusNotFoundError, InputError, UsageError
from embedops.store import Store


def test_reads_beir_directory_and_plain_jsonl(tmp_path):
    write_jsonl(tmp_path / "beir" / "corpus.jsonl", SAMPLE_DOCS)
    rows = [{"id": 7, "text": "integer ids become strings"}]
    docs_beir = read_documents(tmp_path / "beir")
    docs_plain = read_documents(write_jsonl(tmp_path / "plain.jsonl", rows))
    assert [d.id for d in docs_beir] == ["d1", "d2", "d3", "d4", "d5"]
    assert docs_plain[0].id == "7" and docs_plain[0].title == ""


def test_content_hash_changes_with_title_or_text():
    from embedops.corpus import Document

    a = Document("x", "text", "title")
    assert a.content_hash != Document("x", "text", "other").content_hash
    assert a.content_hash != Document("x", "other", "title").content_hash
    assert a.content_hash == Document("y", "text", "title").content_hash


def test_all_problems_are_reported_with_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"_id": "a", "text": "fine"}\n'
        b'{"_id": "b", "text": \n'
        b'{"title": "no id", "text": "x"}\n'
        b'{"_id": "a", "text": "again"}\n'
        b'{"_id": "c", "text": "   "}\n'
        b'{"_id": "d", "text": "caf\xe9"}\n'
    )
    with pytest.raises(InputError) as info:
        read_documents(path)
    msg = str(info.value)
    assert f"{path}:2: malformed JSON" in msg
    assert f"{path}:3: field '_id': missing document id" in msg
    assert f"{path}:4: field '_id': duplicate id 'a' (first seen on line 1)" in msg
    assert f"{path}:5: field 'text': missing or empty text" in msg
    assert f"{path}:6: invalid UTF-8" in msg
    assert len(info.value.problems) == 5


def test_add_is_idempotent_and_counts_changes(tmp_path, corpus_file):
    corpora = CorpusStore(Store.open(str(tmp_path / "s")))
    first = corpora.add("ops", corpus_file)
    again = corpora.add("ops", corpus_file)
    assert (first.added, first.unchanged) == (5, 0)
    assert (again.added, again.changed, again.deleted, again.unchanged) == (0, 0, 0, 5)
    assert again.version == first.version  # nothing written

    edited = [dict(d) for d in SAMPLE_DOCS[1:]]  # d1 deleted
    edited[0]["text"] += " Then check replication."  # d2 changed
    edited.append({"_id": "d6", "text": "New runbook."})  # d6 added
    v2 = write_jsonl(tmp_path / "v2.jsonl", edited)
    added = corpora.add("ops", v2)  # an add keeps what the file does not name
    assert (added.added, added.changed, added.deleted, added.kept, added.unchanged) == (1, 1, 0, 1, 3)
    assert added.documents == 6 and sorted(r["id"] for r in corpora.documents("ops").to_pylist())[0] == "d1"
    change = corpora.add("ops", v2, replace=True)  # the corpus becomes the file
    assert (change.added, change.changed, change.deleted, change.unchanged) == (0, 0, 1, 5)
    docs = {r["id"]: r for r in corpora.documents("ops").to_pylist()}
    assert sorted(docs) == ["d2", "d3", "d4", "d5", "d6"]
    assert docs["d2"]["text"].endswith("Then check replication.")
    assert corpora.info("ops").documents == 5


def test_unknown_corpus_and_bad_names(tmp_path):
    corpora = CorpusStore(Store.open(str(tmp_path / "s")))
    with pytest.raises(CorpusNotFoundError, match="corpus add nope"):
        corpora.documents("nope")
    with pytest.raises(UsageError, match="invalid corpus name"):
        corpora.add("../etc", tmp_path)


def test_missing_path_and_non_beir_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_documents(tmp_path / "absent.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no corpus.jsonl"):
        read_documents(tmp_path / "empty")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(InputError, match="no documents"):
        read_documents(tmp_path / "blank.jsonl")
    (tmp_path / "list.jsonl").write_text(json.dumps(["not", "an", "object"]) + "\n")
    with pytest.raises(InputError, match="list.jsonl:1: expected a JSON object"):
        read_documents(tmp_path / "list.jsonl")
