"""Stage 6, `inv verify`: end-to-end checks of the deployed app through its frontend."""
