"""Execution: clusters from config, batches through a sliding window, resume, progress."""
