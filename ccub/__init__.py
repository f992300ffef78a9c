"""ccub: curate community image-caption data, fine-tune with SCoFT, benchmark culture."""

__version__ = "0.1.0"
