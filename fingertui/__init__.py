"""fingertui — teach a camera to count raised fingers, in the terminal."""

__version__ = "0.1.0"
