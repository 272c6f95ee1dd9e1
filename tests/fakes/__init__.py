"""Test-only fakes: a HuggingFace-Hub-protocol server, a Neuronpedia upload API, the repos the fake hub serves."""
