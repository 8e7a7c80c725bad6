from services.common.migrations import run_env
from services.intake.adapters.door_tables import metadata

run_env(metadata)
