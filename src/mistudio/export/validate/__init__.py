"""Checking an export folder or zip (JSON Schema plus Neuronpedia's formats) and repairing what can be fixed."""
