#!/usr/bin/env bash
# A local certificate authority for the demo and tests: a CA, a broker certificate, and
# optionally client certificates. Production uses certificates from your own PKI.
#
#   scripts/make_ca.sh DIR [HOSTNAME ...]        CA + server cert for the names (and 127.0.0.1)
#   scripts/make_ca.sh DIR --client NAME         a client certificate signed by DIR's CA
#
# Writes DIR/ca.crt, DIR/ca.key, DIR/server.crt, DIR/server.key (or DIR/NAME.crt/.key);
# keys are readable by their owner only. Point mosquitto at ca.crt/server.crt/server.key
# and clients at ca.crt (settings: mqtt_tls.ca_file, with an mqtts:// URL).
set -euo pipefail

[[ $# -ge 1 ]] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
DIR="$1"; shift
DAYS=825
mkdir -p "$DIR"
umask 077

if [[ "${1:-}" == "--client" ]]; then
  NAME="${2:?--client needs a name}"
  [[ -f "$DIR/ca.key" ]] || { echo "make_ca.sh: no CA in $DIR; run without --client first" >&2; exit 1; }
  openssl req -new -newkey rsa:2048 -nodes -keyout "$DIR/$NAME.key" -subj "/CN=$NAME" \
    -out "$DIR/$NAME.csr" 2>/dev/null
  openssl x509 -req -in "$DIR/$NAME.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
    -CAcreateserial -days "$DAYS" -sha256 -out "$DIR/$NAME.crt" \
    -extfile <(printf 'extendedKeyUsage=clientAuth\n') 2>/dev/null
  rm -f "$DIR/$NAME.csr"
  echo "client certificate: $DIR/$NAME.crt (key $DIR/$NAME.key)"
  exit 0
fi

NAMES=("localhost" "$@")
SAN="IP:127.0.0.1"
for name in "${NAMES[@]}"; do SAN="$SAN,DNS:$name"; done

openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$DIR/ca.key" -days "$DAYS" -sha256 \
  -subj "/CN=edgelens local CA" -out "$DIR/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout "$DIR/server.key" -subj "/CN=${NAMES[0]}" \
  -out "$DIR/server.csr" 2>/dev/null
openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
  -days "$DAYS" -sha256 -out "$DIR/server.crt" \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$SAN") 2>/dev/null
rm -f "$DIR/server.csr"
chmod 644 "$DIR/ca.crt" "$DIR/server.crt"
echo "CA: $DIR/ca.crt; broker certificate for $SAN: $DIR/server.crt (key $DIR/server.key)"
