"""Small agents used by demos and tests (import path: the examples/ folder)."""
