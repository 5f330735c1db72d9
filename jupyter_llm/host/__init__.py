"""The model host: loaded models, their workers and scheduling."""

from .host import ModelHost

__all__ = ["ModelHost"]
