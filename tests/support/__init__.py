"""Test helpers shared across test folders: record factories and local stand-ins."""
