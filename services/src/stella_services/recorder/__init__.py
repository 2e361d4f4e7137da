"""The recorder: every session event into ClickHouse, chat history and analytics over gRPC."""
