"""Test support shared by the model, chat, bench and server tests: a tiny random model, a real one
(SmolLM2-135M) and a fake hub."""
