"""Model packages: the card, ONNX import/surgery and inspection."""
