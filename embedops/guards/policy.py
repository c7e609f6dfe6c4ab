"""Guard thresholds and required gates: :class:`Policy` and :func:`load_policy` live in
:mod:`embedops.registry.policy`, because the registry enforces the policy at every alias switch.
This module re-exports them for the gates."""

from embedops.registry.policy import DEFAULT_POLICY_FILE, DEFAULT_REQUIRED, GATES, Policy, load_policy

__all__ = ["DEFAULT_POLICY_FILE", "DEFAULT_REQUIRED", "GATES", "Policy", "load_policy"]
