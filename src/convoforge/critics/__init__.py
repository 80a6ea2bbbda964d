"""Critic experts (graph nodes), selection and plugin discovery."""
