"""The asset service: blobs in the object store, format validation and signed URLs."""
