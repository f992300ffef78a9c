"""Duplicate search: Hamming search over perceptual hashes, grouping."""

from ccub.dedup.search import connected_groups, hamming, lsh_recall, pairs_between, pairs_within

__all__ = ["connected_groups", "hamming", "lsh_recall", "pairs_between", "pairs_within"]
