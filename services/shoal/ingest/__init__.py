"""The ingest service: upload sessions, synchronous validation, the queue's producer side."""
