"""liverseg: DS-SFFNet cascaded liver and liver-tumour segmentation for contrast CT.

A TensorFlow 2 / Keras 3 reimplementation, faithful to the original TF1 code,
of DS-SFFNet and of its parent pipeline (Bellver et al. 2017).
"""

__version__ = "0.1.0"
