"""Stage 7, `inv docs`: the deployment report and architecture diagram from live state."""
