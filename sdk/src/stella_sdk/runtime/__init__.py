"""The runtime every session-holding process shares (services and agent hosts): settings,
serving with readiness and signals, asking a queue group, leases, and the replica."""
