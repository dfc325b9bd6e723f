"""Evaluation: image-quality metrics, baseline codecs, task models, BD-rate, reports."""
