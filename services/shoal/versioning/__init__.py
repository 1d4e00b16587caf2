"""The versioning service: the catalog, the versioned tables and the queue's consumer side."""
