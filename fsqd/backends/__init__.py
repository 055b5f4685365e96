"""Encoder backends: everything up to the FSQ bound (onnxruntime on the CPU; Hailo-8 later)."""
