"""Test support code: real services for the integration tests (not part of the product)."""
