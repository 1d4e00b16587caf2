"""The embedding service: indexes on GPU or CPU, search, selection, duplicates and projections."""
