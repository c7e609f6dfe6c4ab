"""Promotion as the ``promote`` command asks for it: the policy read from its file and the gold and
general sets given as paths, then the registry's one promotion rule (:meth:`Registry.promote`).

>>> promote(registry, "scifact--minilm-v2--1a2b3c4d", gold=Path("../shared/data/scifact"))   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from embedops.beir import benchmark_digest, gold_digest
from embedops.registry import UNSET, AliasState, Registry, load_policy


def promote(registry: Registry, index_id: str, alias: str = "production", *, policy_file: Path | None = None,
            expect: str | None = None, gold: Path | None = None, general: list[Path] | None = None,
            force: bool = False, reason: str | None = None) -> AliasState:
    """Point ``alias`` at ``index_id`` if a guard report authorises it under the policy in
    ``policy_file`` (default ./embedops.toml or the built-in defaults), and, when given, was run on
    exactly these ``gold`` and ``general`` sets; ``force`` with a ``reason`` is an audited override."""
    return registry.promote(index_id, alias, policy=load_policy(policy_file), expect=UNSET if expect is None else expect,
                            reason=reason, override=force, gold_digest=gold_digest(gold) if gold else None,
                            general_digests=[benchmark_digest(g) for g in general or []] or None)
