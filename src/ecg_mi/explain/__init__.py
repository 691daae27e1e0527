"""Interpretability: Grad-CAM of the networks (gradcam.py), the ST-segment attention measure
(st_segment.py), feature importance of the classical models (permutation.py), figures."""
