"""Pure, chunk-at-a-time stream stages: gaps, resampling, normalisation, windows."""

from fsqd.stream.windows import WindowBatch

__all__ = ["WindowBatch"]
