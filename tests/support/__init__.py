"""Test support shared by the model, chat, bench and server tests: a tiny real model and a fake hub."""
