"""The export pipeline: an SAE's dashboards → a deterministic archive for Neuronpedia and SAELens."""
