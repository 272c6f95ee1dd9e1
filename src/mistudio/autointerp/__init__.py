"""Automated interpretability: explain features with an OpenAI-compatible model and score the explanations."""
