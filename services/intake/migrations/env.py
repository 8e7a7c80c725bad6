from services.common.migrations import run_env
from services.intake.adapters.tables import metadata

run_env(metadata)
