#!/usr/bin/env bash
# Makes this machine able to run the whole test suite: Docker Engine, PostgreSQL, Chromium,
# busybox-static, debootstrap, zstd. Installs with apt when root and missing; starts daemons when stopped.
# With CI=true anything that cannot be had is an error, never a skip.
#   scripts/setup-host.sh           everything the tests need
#   scripts/setup-host.sh runtime   only what running the Panel + Agent needs (Docker Engine)
set -euo pipefail
mode=${1:-test}
log() { printf '[setup] %s\n' "$*" >&2; }
need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ "$mode" = test ] && { dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static); }
if [ "$mode" = test ]; then
  command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
  command -v zstd >/dev/null 2>&1 || need_pkgs+=(zstd) # bench/backup.ts compares with `tar | zstd -3`
  command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
  # OpenSSH's sftp client: the SFTP system test (test/sftp.int.test.ts)
  command -v sftp >/dev/null 2>&1 || need_pkgs+=(openssh-client)
  # a local registry for the Docker browser test's pull with progress (packages/web/e2e/docker.test.ts)
  # and the registries tests (htpasswd auth; its bcrypt file is made with the bcryptjs devDependency)
  [ -x /usr/bin/docker-registry ] || need_pkgs+=(docker-registry)
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_pkgs+=(postgresql)
  # deploy tests: a real Prometheus scrapes /metrics, nginx proxies the Panel (test/metrics, test/nginx-proxy)
  command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
  command -v nginx >/dev/null 2>&1 || need_pkgs+=(nginx-light)
  command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose) # test/compose
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_pkgs+=(nats-server) # the event bus across replicas
  # the linux-arm64 Agent executable run under user-mode emulation (test/dist-binary.int.test.ts)
  [ -x /usr/bin/qemu-aarch64-static ] || need_pkgs+=(qemu-user-static)
  [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need_pkgs+=(libc6-arm64-cross libgcc-s1-arm64-cross)
  [ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || need_pkgs+=(libstdc++6-arm64-cross)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # RUNLEVEL=1: packages with a service (prometheus, nginx) do not start one; the tests run their own
    RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    log "missing packages ${need_pkgs[*]} and not root: cannot install"
    [ "${CI:-}" = true ] && exit 1
  fi
fi

# Docker Engine
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  (nohup dockerd >/var/log/ctrl-alt-play-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/ctrl-alt-play-dockerd.log"; exit 1; }
fi

if [ "$mode" = runtime ]; then log "ready: docker $(docker version --format '{{.Server.Version}}')"; exit 0; fi

# PostgreSQL: a cluster of our own on a unix socket + loopback port, owned by the postgres user.
PGPORT_TEST=${PGPORT_TEST:-55432}
PGDIR=/var/tmp/ctrl-alt-play-pg
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
pg_works() { "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT_TEST" -U postgres -Atqc 'select 1' >/dev/null 2>&1; }
if "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PGPORT_TEST" >/dev/null 2>&1 && ! pg_works; then
  # up but refusing connections (seen: a stale shared-memory segment): restart it
  log "postgres on :$PGPORT_TEST is unhealthy; restarting"
  su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDIR -m fast -w stop >/dev/null" || true
fi
if ! pg_works; then
  if [ ! -f "$PGDIR/PG_VERSION" ]; then
    mkdir -p "$PGDIR" && chown postgres:postgres "$PGDIR"
    su postgres -s /bin/sh -c "$PGBIN/initdb -D $PGDIR -A trust -U postgres >/dev/null"
  fi
  log "starting postgres on 127.0.0.1:$PGPORT_TEST"
  su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDIR -l $PGDIR/log -o '-p $PGPORT_TEST -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c dynamic_shared_memory_type=mmap' -w start >/dev/null"
fi
pg_works || { log "postgres did not start; see $PGDIR/log"; exit 1; }
log "ready: docker $(docker version --format '{{.Server.Version}}'), postgres :$PGPORT_TEST, $(chromium --version 2>/dev/null || echo 'no chromium')"
