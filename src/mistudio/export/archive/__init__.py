"""Archive writing: deterministic JSON and gzip, pre-packed zip members, checksums and the deterministic zip."""
