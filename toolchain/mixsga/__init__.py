"""mixSGA toolchain: Llama-family models whose tokens pick one of several weight-shared KV experts."""
__version__ = "0.1.0"
