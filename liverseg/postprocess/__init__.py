"""Test-time post-processing: 3D dense CRF (``crf``) and binary opening (``morphology``)."""
