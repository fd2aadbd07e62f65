"""Recipes: a YAML file that repeats a run."""
