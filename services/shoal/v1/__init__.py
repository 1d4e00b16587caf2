"""Generated protobuf and gRPC stubs of the shoal.v1 contract (made by `make protos`; do not edit)."""
