"""Pure, chunk-at-a-time stream stages: gaps, resampling, normalisation, windows."""

from fsqd.stream.chunk import SampleChunk
from fsqd.stream.windows import WindowBatch

__all__ = ["SampleChunk", "WindowBatch"]
