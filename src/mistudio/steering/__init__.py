"""Steering the model with SAE features (Neuronpedia's methods), comparisons with Neuronpedia, stored runs."""
