"""Helpers the tests share: real NATS, real service processes."""
