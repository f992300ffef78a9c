"""Filled by a later issue; see the README's roadmap."""
