"""Subscriptions' adapters: SQL over intake's database, intake's records, HTTP to subscribers."""
