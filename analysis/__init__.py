"""The science: pure metric code and the worker shell around it."""
