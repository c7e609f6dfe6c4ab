"""Queries and relevance judgements (qrels) in BEIR's formats, validated line by line.

* queries: a BEIR directory's ``queries.jsonl`` or any JSONL of ``{"_id"|"id", "text"}``;
* qrels: a TSV ``query-id  corpus-id  score`` (header optional), e.g. ``qrels/test.tsv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedops.checksums import sha256_files
from embedops.corpus import doc_text, iter_jsonl, read_documents
from embedops.errors import InputError, InputProblem


def read_queries(path: Path | str, only: set[str] | None = None) -> dict[str, str]:
    """``{query id: text}``; with ``only``, just those ids."""
    path = Path(path)
    if path.is_dir():
        path = path / "queries.jsonl"
    if not path.is_file():
        raise InputError(InputProblem(str(path), None, None, "no such queries file"))
    problems: list[InputProblem] = []
    queries: dict[str, str] = {}
    for lineno, obj in iter_jsonl(path, problems):
        qid = obj.get("_id", obj.get("id"))
        text = obj.get("text")
        if qid is None or str(qid).strip() == "":
            problems.append(InputProblem(str(path), lineno, "_id", "missing query id"))
        elif not isinstance(text, str) or not text.strip():
            problems.append(InputProblem(str(path), lineno, "text", "missing or empty query text"))
        elif str(qid) in queries:
            problems.append(InputProblem(str(path), lineno, "_id", f"duplicate query id {qid!r}"))
        elif only is None or str(qid) in only:
            queries[str(qid)] = text
    if problems:
        raise InputError(problems)
    return queries


def read_qrels(path: Path | str) -> dict[str, dict[str, int]]:
    """``{query id: {doc id: relevance}}`` from a BEIR qrels TSV."""
    path = Path(path)
    if not path.is_file():
        raise InputError(InputProblem(str(path), None, None, "no such qrels file"))
    problems: list[InputProblem] = []
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", errors="strict") as fh:
        try:
            lines = fh.read().splitlines()
        except UnicodeDecodeError as exc:
            raise InputError(InputProblem(str(path), None, None, f"invalid UTF-8 at byte {exc.start}")) from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if lineno == 1 and parts[0].lower().replace("_", "-") in ("query-id", "qid", "query"):
            continue
        if len(parts) == 4:  # TREC format: qid 0 docid rel
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            problems.append(InputProblem(str(path), lineno, None, "expected 'query-id<TAB>corpus-id<TAB>score'"))
            continue
        try:
            score = int(float(parts[2]))
        except ValueError:
            problems.append(InputProblem(str(path), lineno, "score", f"not a number: {parts[2]!r}"))
            continue
        qrels.setdefault(parts[0], {})[parts[1]] = score
    if problems:
        raise InputError(problems)
    if not qrels:
        raise InputError(InputProblem(str(path), None, None, "no judgements found"))
    return qrels


def read_sts(path: Path | str) -> tuple[list[str], list[str], list[float]]:
    """STS pairs with gold scores from a TSV with ``sentence1``, ``sentence2`` and ``score`` columns
    (STS Benchmark layout); scores are returned as given (0-5 for STS-B)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(InputProblem(str(path), None, None, "no such STS file"))
    lines = path.read_text("utf-8").splitlines()
    if not lines:
        raise InputError(InputProblem(str(path), None, None, "empty STS file"))
    header = lines[0].split("\t")
    missing = [c for c in ("sentence1", "sentence2", "score") if c not in header]
    if missing:
        raise InputError(InputProblem(str(path), 1, missing[0], f"header lacks column(s) {missing}"))
    i1, i2, isc = header.index("sentence1"), header.index("sentence2"), header.index("score")
    s1, s2, scores, problems = [], [], [], []
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) <= max(i1, i2, isc):
            problems.append(InputProblem(str(path), lineno, None, f"expected {len(header)} tab-separated columns"))
            continue
        try:
            scores.append(float(parts[isc]))
        except ValueError:
            problems.append(InputProblem(str(path), lineno, "score", f"not a number: {parts[isc]!r}"))
            continue
        s1.append(parts[i1])
        s2.append(parts[i2])
    if problems:
        raise InputError(problems)
    return s1, s2, scores


def gold_files(gold: Path | str) -> tuple[Path, Path]:
    """(queries file, qrels file) of a gold set: a BEIR directory with ``queries.jsonl`` and
    ``qrels/test.tsv`` (or its only other ``qrels/*.tsv``)."""
    gold = Path(gold)
    if not gold.is_dir():
        raise InputError(InputProblem(str(gold), None, None, "gold set must be a BEIR directory (queries.jsonl + qrels/)"))
    qrels_file = gold / "qrels" / "test.tsv"
    if not qrels_file.is_file():
        candidates = sorted((gold / "qrels").glob("*.tsv")) if (gold / "qrels").is_dir() else []
        if not candidates:
            raise InputError(InputProblem(str(gold), None, None, "no qrels/test.tsv in the gold directory"))
        qrels_file = candidates[0]
    return gold / "queries.jsonl", qrels_file


def gold_digest(gold: Path | str) -> str:
    """sha256 (16 hex digits) of a gold set's queries and qrels files, as guard reports bind it."""
    queries_file, qrels_file = gold_files(gold)
    if not queries_file.is_file():
        raise InputError(InputProblem(str(queries_file), None, None, "no such queries file"))
    return sha256_files([queries_file, qrels_file])[:16]


@dataclass(frozen=True)
class BeirSplit:
    """One split of a BEIR directory: its queries that have judgements, the judgements, and (when
    read) the corpus as ``{id: text}`` with title and text joined the way embedops embeds them."""

    path: Path
    qrels_file: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    documents: dict[str, str] | None = None


def read_beir(path: Path | str, split: str | None = None, *, documents: bool = True) -> BeirSplit:
    """The one BEIR reader: ``qrels/<split>.tsv`` (None: ``test.tsv``, else the only ``qrels/*.tsv``,
    see :func:`gold_files`), the queries it judges, and with ``documents`` the corpus."""
    path = Path(path)
    if split is None:
        queries_file, qrels_file = gold_files(path)
    else:
        queries_file, qrels_file = path / "queries.jsonl", path / "qrels" / f"{split}.tsv"
        if not qrels_file.is_file():
            raise InputError(InputProblem(str(qrels_file), None, None, f"no {split} qrels in this BEIR directory"))
    qrels = read_qrels(qrels_file)
    queries = read_queries(queries_file, only=set(qrels))
    docs = {d.id: doc_text(d.title, d.text) for d in read_documents(path)} if documents else None
    return BeirSplit(path, qrels_file, queries, qrels, docs)


def read_slices(gold: Path | str) -> tuple[dict[str, str], str] | None:
    """The slice of each gold query and where it was read, or None when the gold set names none: a
    ``slices.tsv`` (``query-id<TAB>slice``, header optional) beside the qrels file, else the
    ``slice`` field of each query's ``metadata`` in ``queries.jsonl``."""
    queries_file, qrels_file = gold_files(gold)
    tsv = qrels_file.parent / "slices.tsv"
    problems: list[InputProblem] = []
    slices: dict[str, str] = {}
    if tsv.is_file():
        for lineno, line in enumerate(tsv.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if lineno == 1 and parts[0].lower().replace("_", "-") in ("query-id", "qid", "query"):
                continue
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                problems.append(InputProblem(str(tsv), lineno, None, "expected 'query-id<TAB>slice'"))
                continue
            slices[parts[0]] = parts[1].strip()
        if problems:
            raise InputError(problems)
        return (slices, str(tsv)) if slices else None
    if not queries_file.is_file():
        return None
    for lineno, obj in iter_jsonl(queries_file, problems):
        meta = obj.get("metadata")
        if isinstance(meta, dict) and "slice" in meta:
            value = meta["slice"]
            if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
                problems.append(InputProblem(str(queries_file), lineno, "metadata.slice", "must be a non-empty string"))
                continue
            slices[str(obj.get("_id", obj.get("id")))] = str(value)
    if problems:
        raise InputError(problems)
    return (slices, f"{queries_file} (metadata.slice)") if slices else None


def read_gold(gold: Path | str) -> tuple[dict[str, str], dict[str, dict[str, int]], str]:
    """Queries, qrels and :func:`gold_digest` of a gold set (see :func:`gold_files`)."""
    split = read_beir(gold, documents=False)
    return split.queries, split.qrels, gold_digest(gold)


def benchmark_digest(path: Path | str) -> str:
    """sha256 (16 hex digits) of a general benchmark: an STS TSV file, or every file of a BEIR
    directory (names and bytes; SOURCE.md excluded), as guard reports bind it."""
    path = Path(path)
    if not path.exists():
        raise InputError(InputProblem(str(path), None, None, "no such general benchmark"))
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.name != "SOURCE.md")
    return sha256_files(files, with_names=True)[:16]
