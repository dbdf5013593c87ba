#!/bin/sh
# Install one Sanji node on a Linux machine (Debian/Ubuntu/UOS/Kylin with systemd), as root:
#
#   sh deploy/install.sh county C     --name 县政务服务中心 [--db postgresql://sanji@127.0.0.1/sanji]
#   sh deploy/install.sh town   T01   --parent-url https://county.example.gov.cn:8100 --token SJE1-...
#   sh deploy/install.sh village T01V01 --parent-url https://t01.example.gov.cn:8100 --token SJE1-...
#
# With a city above the counties (docs/scaling.md, 3.) the city is the top hub and each county joins it:
#
#   sh deploy/install.sh city   S     --name 市政务服务中心 [--db postgresql://sanji@127.0.0.1/sanji]
#   sh deploy/install.sh county C1    --parent-url https://city.example.gov.cn:8100 --token SJE1-...
#
# (then townships and villages as above, with ids that start with their county's: C1T01, C1T01V01).
# A province above cities is the same once more (`province`, and a city with --parent-url and --token).
#
# It creates the service user `sanji`, /etc/sanji/<tier>.toml from deploy/<tier>.toml, the state
# directory /var/lib/sanji/<id>, a virtualenv in /opt/sanji/venv with the locked dependencies and
# the wheel (`make dist` builds both into dist/), joins the tree with the one-time token from the
# parent (`sanji enroll join`: keys are made on this machine and never leave it), registers and
# starts the hardened unit sanji-node@<tier>, and finishes with `sanji doctor`.
#
# The top hub's root of trust (the county's, or the city's above counties) is made by hand, on a machine kept offline (deploy/README.md, 2.).
# --root DIR writes everything under DIR instead of / and skips users, venv and systemd (to check
# the generated files); --no-start registers the unit without starting it.
set -eu

usage() { echo "usage: $0 province|city|county|town|village NODE_ID [--parent-url URL] [--token T] [--name N] [--port P] [--db URL] [--dist DIR] [--root DIR] [--no-start]" >&2; exit 2; }
[ $# -ge 2 ] || usage
TIER=$1; ID=$2; shift 2
case "$TIER" in province|city|county|town|village) ;; *) usage ;; esac
# The bound of protocol/bounds.py (node_id_problem): 1-64 letters, digits, _ or -.
case "$ID" in ""|*[!A-Za-z0-9_-]*) BAD_ID=1 ;; *) BAD_ID=0 ;; esac
if [ "$BAD_ID" = 1 ] || [ ${#ID} -gt 64 ]; then
  echo "node id '$ID': 节点编号只能包含字母、数字、_ 和 -，最多64个字符 a node id has 1-64 letters, digits, _ or - (e.g. T01V03)" >&2
  exit 2
fi
PARENT_URL=""; TOKEN=""; NAME=""; PORT=8100; DB=""; ROOT=""; START=1
HERE=$(cd "$(dirname "$0")" && pwd)
DIST="$HERE/../dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --parent-url) PARENT_URL=$2; shift 2 ;;
    --token) TOKEN=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --db) DB=$2; shift 2 ;;
    --dist) DIST=$2; shift 2 ;;
    --root) ROOT=$2; shift 2 ;;
    --no-start) START=0; shift ;;
    *) usage ;;
  esac
done
# A township or village always has a parent; a county, city or province has one only below a higher level.
case "$TIER" in town|village) [ -n "$PARENT_URL" ] || { echo "a $TIER node needs --parent-url" >&2; exit 2; } ;; esac
if [ -n "$TOKEN" ] && [ -z "$PARENT_URL" ]; then
  echo "--token is redeemed at the parent: give its --parent-url too (the top hub needs no token: deploy/README.md, 2.)" >&2
  exit 2
fi
case "$PARENT_URL" in http://*) echo "warning: $PARENT_URL is plain HTTP; use https:// between sites (deploy/README.md, TLS)" >&2 ;; esac

ETC="$ROOT/etc/sanji"; STATE="$ROOT/var/lib/sanji/$ID"; OPT="$ROOT/opt/sanji"; UNITS="$ROOT/etc/systemd/system"
CONFIG="$ETC/$TIER.toml"
mkdir -p "$ETC" "$STATE" "$OPT" "$UNITS"

if [ -z "$ROOT" ]; then
  id sanji >/dev/null 2>&1 || useradd --system --home-dir /var/lib/sanji --shell /usr/sbin/nologin sanji
  WHEEL=$(ls "$DIST"/sanji-*.whl | tail -n 1)
  [ -x "$OPT/venv/bin/python" ] || python3 -m venv "$OPT/venv"
  "$OPT/venv/bin/pip" install --quiet --require-hashes -r "$DIST/requirements.txt"
  "$OPT/venv/bin/pip" install --quiet --no-deps --force-reinstall "$WHEEL"
  cp -r "$HERE" "$OPT/deploy"
fi

if [ -e "$CONFIG" ]; then
  echo "$CONFIG exists: kept as it is (an upgrade changes only the code)"
else
  {
    EXAMPLE=$TIER; [ "$TIER" = province ] && EXAMPLE=city
    echo "# Written by deploy/install.sh $(date -u +%Y-%m-%dT%H:%M:%SZ); see deploy/$EXAMPLE.toml for every setting."
    echo "[node]"
    echo "id = \"$ID\""
    echo "role = \"$TIER\""
    [ -n "$NAME" ] && echo "name = \"$NAME\""
    if [ "$TIER" = village ]; then echo 'host = "127.0.0.1"'; else echo 'host = "0.0.0.0"'; fi
    echo "port = $PORT"
    echo "key_file = \"/var/lib/sanji/$ID/node.key\""
    echo "data_dir = \"/var/lib/sanji/$ID\""
    [ -n "$DB" ] && echo "db = \"$DB\""
    if [ -n "$PARENT_URL" ]; then
      echo ""
      echo "[parent]"
      echo "url = \"$PARENT_URL\""
      echo "# No fallback_urls needed: the node learns its ancestors' addresses from its parent."
    fi
    echo ""
    echo "[auth]"
    echo "required = true"
    echo ""
    echo "[trust]"
    echo "required = true"
    echo ""
    echo "[backup]"
    echo "interval_hours = 24"
    echo "keep_days = 14"
  } > "$CONFIG"
  echo "wrote $CONFIG"
fi
cp "$HERE/systemd/sanji-node@.service" "$UNITS/sanji-node@.service"

if [ -n "$ROOT" ]; then
  echo "staged under $ROOT (no user, venv or service made)"
  exit 0
fi
chown -R sanji:sanji /var/lib/sanji
chgrp sanji "$CONFIG"; chmod 0640 "$CONFIG"
SANJI="$OPT/venv/bin/sanji"
if [ -n "$TOKEN" ] && [ ! -e "$STATE/node.key" ]; then
  runuser -u sanji -- "$SANJI" enroll join --config "$CONFIG" --token "$TOKEN"
fi
systemctl daemon-reload
if [ "$START" = 1 ]; then systemctl enable --now "sanji-node@$TIER"; else systemctl enable "sanji-node@$TIER"; fi
runuser -u sanji -- "$SANJI" doctor --config "$CONFIG" || true
