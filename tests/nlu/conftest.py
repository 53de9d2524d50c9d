"""NLU tests use the shared Rasa server fixture of tests/conftest.py."""
