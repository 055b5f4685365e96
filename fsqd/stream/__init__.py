"""Pure, chunk-at-a-time stream stages: gaps, resampling, normalisation, windows."""
