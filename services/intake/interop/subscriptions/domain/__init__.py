"""Subscriptions' domain: the subscription, its delivery state machine, and what determination
events mean to it. Pure Python: no storage, transport or generated protobuf."""
