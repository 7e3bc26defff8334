"""Synthetic abdominal CT phantoms in LiTS layout, for tests, the demo and validation.

``training`` is the generator the demo trains on (styles ``narrow`` and
``wide``); ``external`` is a family written independently of it, for
external validation only (never train or tune on it); ``preview`` draws a
PNG grid of phantoms. Not part of the runtime pipeline.
"""
