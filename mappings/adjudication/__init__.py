"""Adjudication: Coverage and plan benefits turn a Claim into a ClaimResponse and an EOB.

``adjudicate_claim(repo, ctx, claim_id)`` is the entry point (the coding engine's
post-commit hook calls it with ``--adjudication auto``); ``eligibility`` answers
CoverageEligibilityRequests. docs/adjudication.md explains benefits, rules and the EOB.
"""

from mappings.adjudication.service import (
    Adjudicated,
    AdjudicationConfig,
    adjudicate_claim,
    get_config,
    set_config,
)

__all__ = ["AdjudicationConfig", "Adjudicated", "adjudicate_claim", "get_config", "set_config"]
