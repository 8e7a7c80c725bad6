"""Subscriptions' use cases and the ports they depend on."""
