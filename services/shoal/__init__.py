"""Shoal: versioned ML datasets, model metrics, embeddings and assets over gRPC."""

__version__ = "0.1.0"
