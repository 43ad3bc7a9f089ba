"""Sandboxed WebAssembly programs inside a container (docs/programs.md)."""
