"""Stewardship: what people decide about the data after the checks, kept beside the outputs.

A steward folder (`DATA/steward/`, beside `clean/` and `reports/`) holds the review decisions
(`decisions.jsonl`) and the withdrawals of consent (`withdrawals.jsonl`). Both are keyed by
content (the submitted image's SHA-256 and the caption's), so a decision follows a photo
whatever its path, and stops applying when the photo or its caption changes. `ccub validate`
reads the folder on every run.
"""

from ccub.steward.records import (
    DECISIONS_FILE,
    STEWARD_DIR,
    WITHDRAWALS_FILE,
    Decision,
    StewardError,
    Withdrawal,
    caption_digest,
)
from ccub.steward.store import Steward

__all__ = ["DECISIONS_FILE", "STEWARD_DIR", "WITHDRAWALS_FILE", "Decision", "Steward", "StewardError",
           "Withdrawal", "caption_digest"]
