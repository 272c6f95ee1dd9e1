"""Neuronpedia's formats: bulk-import rows, window-ordered activation files, SAEDashboard batches, ids, upload."""
