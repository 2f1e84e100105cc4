"""Evaluations that regenerate documents from data (``python -m trader.evaluation.strategies``)."""
