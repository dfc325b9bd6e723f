"""A coding engine that runs the shipped models without PyTorch or CompressAI: transforms in ONNX Runtime,
exact integer hyper-synthesis, constriction ANS."""
