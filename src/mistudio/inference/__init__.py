"""The model server and live activations: models loaded once and shared by live activations and steering."""
