"""Translation between the standard front doors and intake's command path, pure and without I/O.

* ``pas/``: HL7 Da Vinci Prior Authorization Support 2.2.1 (FHIR R4) request, response, error and
  inquiry Bundles.
* ``x12/``: the ASC X12 005010X217 278 request and response, its envelope and the 999/TA1
  acknowledgments.
* ``codes``: the X12 code lists both share (PAS reuses X12's codes), ``answers``: what a stored
  request view says for each line, in the terms both formats answer in.

Every translator turns hostile input into a list of precise problems and never raises for it;
they build the same ``ur.intake.v1.SubmitRequestRequest`` intake's gRPC ``SubmitRequest`` takes and
read the ``RequestView`` its ``GetRequest`` returns.
"""
