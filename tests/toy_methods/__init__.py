"""Test-only plasticity methods, one per hook kind, each one file with one registration line."""
