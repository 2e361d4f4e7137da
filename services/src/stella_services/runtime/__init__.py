"""What every STELLA service shares: bus connection, streams, lifecycle, telemetry."""
