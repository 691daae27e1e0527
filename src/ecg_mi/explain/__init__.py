"""Interpretability: Grad-CAM on the ECG (gradcam.py) and the ST-segment attention measure
(st_attention.py)."""
