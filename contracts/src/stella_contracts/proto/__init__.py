"""Generated gRPC/protobuf stubs. Regenerate with ``make proto``; never edit by hand."""
