#!/usr/bin/env bash
# Bring up a Docker engine and a local PostgreSQL image for the testcontainers run.
#
# No container registry is reachable from these machines, so the image is built
# here: a Debian minbase root filesystem with Debian's postgresql-<major>, turned
# into an image with `docker import`, and an entrypoint that honours
# POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB as the official image does.
# The image stays in Docker's store, so later runs on the same machine reuse it.
#
# Usage: .ci/docker-postgres.sh MAJOR   -> prints the image name on stdout
set -euo pipefail
major="${1:-15}"
# Tagged by this script's content: changing the recipe builds a new image.
image="outbound-schema/postgres:${major}-$(sha256sum "$0" | cut -c1-12)"
log() { echo "docker-postgres: $*" >&2; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  log "installing docker.io and debootstrap"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >&2
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  # Default settings: overlay2 and bridge networking, which testcontainers' port mapping needs.
  nohup dockerd >/tmp/outbound-schema-dockerd.log 2>&1 &
  echo $! >/tmp/outbound-schema-dockerd.pid  # .ci/run stops the engine it started
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /tmp/outbound-schema-dockerd.log"; exit 1; }
fi

if docker image inspect "$image" >/dev/null 2>&1; then
  log "reusing $image"
  echo "$image"
  exit 0
fi

# The Debian mirror this machine's apt already uses.
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
rootfs=$(mktemp -d /tmp/outbound-schema-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
log "building $image from Debian bookworm (minbase, postgresql-$major)"
debootstrap --variant=minbase --include="postgresql-$major" bookworm "$rootfs" "$mirror" >&2

cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<ENTRYPOINT
#!/bin/sh
set -e
bin=/usr/lib/postgresql/$major/bin
export PGDATA=/var/lib/postgresql/data
user="\${POSTGRES_USER:-postgres}"
db="\${POSTGRES_DB:-\$user}"
if [ ! -s "\$PGDATA/PG_VERSION" ]; then
  mkdir -p "\$PGDATA" /var/run/postgresql
  chown postgres:postgres "\$PGDATA" /var/run/postgresql
  printf '%s\n' "\${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" >/tmp/pwfile
  chown postgres /tmp/pwfile
  su postgres -c "\$bin/initdb -D \$PGDATA -U \$user --pwfile=/tmp/pwfile --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256" >/dev/null
  rm -f /tmp/pwfile
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"\$PGDATA/pg_hba.conf"
  if [ "\$db" != postgres ]; then
    su postgres -c "\$bin/postgres --single -D \$PGDATA postgres" >/dev/null <<SQL
CREATE DATABASE "\$db" OWNER "\$user";
SQL
  fi
fi
exec su postgres -c "exec \$bin/postgres -D \$PGDATA -c listen_addresses='*'"
ENTRYPOINT
chmod +x "$rootfs/usr/local/bin/docker-entrypoint.sh"

tar -C "$rootfs" -c . | docker import \
  --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
  --change 'EXPOSE 5432' \
  --change 'ENV PATH=/usr/lib/postgresql/'"$major"'/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$image" >&2
log "built $image"
echo "$image"
