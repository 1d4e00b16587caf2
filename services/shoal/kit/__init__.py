"""What every Shoal service shares: settings, logging, the gRPC server and its interceptors, storage adapters."""
