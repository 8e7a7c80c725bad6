"""Da Vinci PAS 2.2.1 (FHIR R4) translations."""
