"""``stella deploy``: agents-config.yaml → Kubernetes manifests (pure, no cluster access)."""
