"""sha256 checksums of files and of whole directories (Python's hashlib; nothing hand-rolled)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileChecksum:
    """A file of an artifact: path relative to the artifact root, sha256 and size in bytes."""

    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


def sha256_file(path: Path | str) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    return sha256_files([Path(path)])


def sha256_files(paths: Iterable[Path], *, with_names: bool = False) -> str:
    """sha256 (hex) of several files' bytes in order (each preceded by its name with ``with_names``)."""
    h = hashlib.sha256()
    for path in paths:
        if with_names:
            h.update(Path(path).name.encode())
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """sha256 (hex) of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value, *, default=None) -> str:
    """sha256 (hex) of ``value`` as canonical JSON (sorted keys): the key of a content-addressed result."""
    return sha256_text(json.dumps(value, sort_keys=True, default=default))


def copy_and_hash(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` (following symlinks) and return the sha256 of the bytes written."""
    h = hashlib.sha256()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(_CHUNK):
            h.update(chunk)
            fout.write(chunk)
    shutil.copystat(src, dst, follow_symlinks=True)
    return h.hexdigest()


def manifest_digest(files: list[FileChecksum]) -> str:
    """One sha256 for a set of files: hash of the sorted (path, sha256) list."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.sha256}\n".encode())
    return h.hexdigest()


def verify_files(root: Path, files: list[FileChecksum]) -> list[str]:
    """Problems found re-hashing ``files`` under ``root`` (missing, changed or extra files)."""
    problems = []
    expected = {f.path for f in files}
    for f in files:
        p = root / f.path
        if not p.is_file():
            problems.append(f"{f.path}: missing")
            continue
        actual = sha256_file(p)
        if actual != f.sha256:
            problems.append(f"{f.path}: sha256 is {actual[:16]}..., expected {f.sha256[:16]}...")
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and rel not in expected:
                problems.append(f"{rel}: unexpected file (not part of the registered artifact)")
    return problems


def store_content_addressed(source: Path, files: list[Path], artifacts: Path, kind: str) -> tuple[str, list[FileChecksum]]:
    """Copy ``files`` (under ``source``) into ``artifacts/<kind>/<digest>``, hashing as they are copied.

    The copy goes to a private staging folder first and is renamed into place whole, so a killed
    writer never leaves a half-copied artifact under its digest. Identical content already stored
    is reused; a damaged earlier copy is replaced. Returns (path relative to the store, checksums).
    """
    import os
    import uuid

    staging = artifacts / ".staging" / uuid.uuid4().hex
    try:
        checksums = []
        for src in files:
            rel = src.relative_to(source).as_posix()
            checksums.append(FileChecksum(rel, copy_and_hash(src, staging / rel), (staging / rel).stat().st_size))
        digest = manifest_digest(checksums)
        final = artifacts / kind / digest
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists() and verify_files(final, checksums):
            shutil.rmtree(final)
        if not final.exists():
            os.rename(staging, final)
        return f"{artifacts.name}/{kind}/{digest}", checksums
    finally:
        shutil.rmtree(staging, ignore_errors=True)
