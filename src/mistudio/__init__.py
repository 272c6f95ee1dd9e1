"""miStudio: sparse-autoencoder management, feature dashboards and Neuronpedia export."""

__version__ = "0.1.0"
