"""Training SAEs and transcoders on the engine's activation pipeline, with SAELens's semantics."""
