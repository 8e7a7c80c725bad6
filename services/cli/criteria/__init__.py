"""``urctl criteria``: check, test, explain and replay the clinical criteria the review service applies.

    library.py      criteria files and directories, loaded and validated as the review service does
    words.py        the plain words and colours a medical director reads for outcomes and decisions
    validate.py     ``criteria validate``
    examples.py     ``criteria test``: every example through durable-rules and the reference matcher
    explain.py      ``criteria explain``: a request file locally, or a stored request via review's gRPC API
    replay.py       ``criteria replay``: a draft set against stored requests (services/review/adapters/queries.py)
    replay_view.py  the replay report as a person reads it
    commands.py     the command line; urctl adds it to its parser
"""
