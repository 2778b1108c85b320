"""The content-addressed artifact store over fsspec."""
