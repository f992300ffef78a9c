"""Image decoding, facts and metadata-free export."""
