"""Exporting a trained model as a folder that runs without fingertui."""
