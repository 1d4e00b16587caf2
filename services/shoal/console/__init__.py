"""The console: an HTTP server for the web app in console/, forwarding its Connect calls to the gRPC services."""
