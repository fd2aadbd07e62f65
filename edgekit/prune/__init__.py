"""Structured pruning: the plan, 2:4 sparsity, fine-tuning."""
