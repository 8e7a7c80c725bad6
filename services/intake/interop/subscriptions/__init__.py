"""FHIR R4 Subscriptions (the Subscriptions Backport) to the Da Vinci PAS subscription topic.

A submitting organization subscribes once (rest-hook, ``application/fhir+json``, full-resource);
when a request it submitted is decided, its endpoint is sent a notification Bundle carrying the
whole PAS response Bundle. Layers:

* ``domain/``: the subscription, its delivery state machine (handshake, ordered event
  notifications, heartbeats, exponential backoff) and what determination events mean to it;
* ``resource.py`` and ``notification.py``: the FHIR Subscription resource and the notification
  Bundles (pure translation, as ``interop/pas``);
* ``service_layer/``: the use cases (:class:`SubscriptionService`, the consumer's
  ``NotificationRecorder``, the ``Deliverer``) over ports;
* ``adapters/``: SQL over intake's database (tables ``fhir_subscriptions`` and
  ``fhir_notifications``), intake's records, HTTP to subscribers;
* ``worker.py`` and ``bootstrap.py``: the worker process (``ur-intake-subscriptions``) and its
  wiring; ``services/intake/entrypoints/fhir_subscriptions.py``: the door's routes.
"""
