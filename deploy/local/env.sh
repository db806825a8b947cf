# shellcheck shell=sh
# Source me (don't execute): `. deploy/local/env.sh`
# Connection settings for the local infrastructure started by deploy/local/infra.sh.
# Honours the same port overrides as infra.sh.
export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:${TRIAGEFLOW_KAFKA_PORT:-9092}"
export DATABASE_URL="postgresql://triageflow:triageflow@127.0.0.1:${TRIAGEFLOW_PG_PORT:-5432}/triageflow"
# The optional 3-node cluster (`infra.sh up kafka3`), for failure tests.
export TRIAGEFLOW_KAFKA3_BOOTSTRAP_SERVERS="127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092"
