"""Test doubles shipped for users and the test suite: synthetic batches and scripted envs."""
