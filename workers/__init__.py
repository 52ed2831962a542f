"""Projection workers: in-process runner (embedded) and dramatiq actors on Redis (production)."""
