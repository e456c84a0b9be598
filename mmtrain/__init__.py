"""mmtrain: train and evaluate multimodal image-text models."""

__version__ = "0.1.0"
