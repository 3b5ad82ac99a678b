#!/usr/bin/env bash
# Start the servers the integration tests need, if they are not already answering:
# PostgreSQL on 127.0.0.1:5432 (trust auth, database "test"), Redis on 127.0.0.1:6379,
# etcd on 127.0.0.1:2379 and NATS with JetStream on 127.0.0.1:4222. Safe to run again; prints
# what it started.
set -euo pipefail

pg_ok() { psql -h 127.0.0.1 -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1; }
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        echo "services.sh: no PostgreSQL cluster found" >&2
        exit 1
    fi
    echo "services.sh: starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! pg_ok; then
    # A fresh Debian cluster asks for a password on TCP; the tests use trust on loopback.
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
    psql -h 127.0.0.1 -U postgres -Atqc "select 1 from pg_database where datname='test'" \
        | grep -q 1 || psql -h 127.0.0.1 -U postgres -qc 'create database test'
fi
pg_ok || { echo "services.sh: PostgreSQL is not reachable as postgres@127.0.0.1/test" >&2; exit 1; }

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "services.sh: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "services.sh: Redis is down" >&2; exit 1; }

etcd_ok() { curl -fsS http://127.0.0.1:2379/health 2>/dev/null | grep -q '"health":"true"'; }
if ! etcd_ok; then
    echo "services.sh: starting etcd"
    datadir=${CHRONOID_ETCD_DIR:-/tmp/chronoid-etcd-2379}
    mkdir -p "$datadir"
    setsid nohup etcd --name chronoid-test --data-dir "$datadir" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster chronoid-test=http://127.0.0.1:2380 \
        >"$datadir.log" 2>&1 < /dev/null &
    for _ in $(seq 100); do etcd_ok && break; sleep 0.1; done
fi
etcd_ok || { echo "services.sh: etcd did not become healthy" >&2; exit 1; }
nats_ok() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }
if ! nats_ok; then
    echo "services.sh: starting NATS (JetStream)"
    datadir=${CHRONOID_NATS_DIR:-/tmp/chronoid-nats-4222}
    mkdir -p "$datadir"
    setsid nohup "$(command -v nats-server || echo /usr/sbin/nats-server)" -a 127.0.0.1 -p 4222 \
        -js -sd "$datadir" >"$datadir.log" 2>&1 </dev/null &
    for _ in $(seq 100); do nats_ok && break; sleep 0.1; done
fi
nats_ok || { echo "services.sh: NATS did not start" >&2; exit 1; }
echo "services.sh: PostgreSQL, Redis, etcd and NATS are up"
