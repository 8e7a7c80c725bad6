from services.common.migrations import run_env
from services.review.adapters.tables import metadata

run_env(metadata)
