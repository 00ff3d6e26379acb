"""Shipped MSTVSC models: weights, model cards and exported ONNX graphs."""
