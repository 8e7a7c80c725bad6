"""The tamper-evident audit log every service keeps (README "Audit"): the hash chain and its
verification (``chain``, pure), who is acting (``actor``), and its SQL store (``store``)."""
