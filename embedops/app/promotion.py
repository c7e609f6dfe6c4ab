"""Promotion as the ``promote`` command asks for it: the policy read from its file and the gold and
general sets given as paths, then the registry's one promotion rule (:meth:`Registry.promote`).

>>> promote(registry, "scifact--minilm-v2--1a2b3c4d", gold=Path("../shared/data/scifact"))   # doctest: +SKIP
>>> start_canary(registry, "scifact--minilm-v2--1a2b3c4d", percent=10)                           # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from embedops.beir import benchmark_digest, gold_digest
from embedops.registry import UNSET, AliasState, Registry, load_policy


def promote(registry: Registry, index_id: str, alias: str = "production", *, policy_file: Path | None = None,
            expect: str | None = None, gold: Path | None = None, general: list[Path] | None = None,
            force: bool = False, reason: str | None = None, by: str | None = None) -> AliasState:
    """Point ``alias`` at ``index_id`` if a guard report authorises it under the policy in
    ``policy_file`` (default ./embedops.toml or the built-in defaults), and, when given, was run on
    exactly these ``gold`` and ``general`` sets; ``force`` with a ``reason`` is an audited override.
    ``by`` names the actor (the dashboard names itself and the client)."""
    return registry.promote(index_id, alias, policy=load_policy(policy_file), expect=UNSET if expect is None else expect,
                            reason=reason, override=force, gold_digest=gold_digest(gold) if gold else None,
                            general_digests=[benchmark_digest(g) for g in general or []] or None, by=by)


def start_canary(registry: Registry, index_id: str, alias: str = "production", percent: float = 10.0, *,
                 policy_file: Path | None = None, gold: Path | None = None, general: list[Path] | None = None,
                 force: bool = False, reason: str | None = None) -> AliasState:
    """Let ``index_id`` answer ``percent`` of ``alias``'s searches, under the rule :func:`promote`
    applies (a passing report that authorises promoting it now, or ``force`` with a ``reason``)."""
    return registry.start_canary(index_id, alias, percent, policy=load_policy(policy_file), reason=reason,
                                 override=force, gold_digest=gold_digest(gold) if gold else None,
                                 general_digests=[benchmark_digest(g) for g in general or []] or None)


def promote_canary(registry: Registry, alias: str = "production", *, policy_file: Path | None = None,
                   force: bool = False, reason: str | None = None) -> AliasState:
    """Give ``alias``'s canary all of its traffic: an ordinary guarded promotion of the canary index."""
    return registry.promote_canary(alias, policy=load_policy(policy_file), reason=reason, override=force)
