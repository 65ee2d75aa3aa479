"""Reasoning: programs, executors, parsers, question generators and composed models."""
