"""Rostra core."""
