"""Shared vocabulary of every layer: history events, statuses, errors, the codec."""
