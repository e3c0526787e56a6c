#!/usr/bin/env bash
# Resolve the Kafka broker jars listed in kafka/pom.xml into $OCOP_KAFKA_HOME/libs (default .kafka/libs).
# Instant when the marker (sha256 of the pom) matches; otherwise Maven copies them into a temp dir that
# replaces libs/ only on success. Same marker as ocop_trace.broker.ensure_jars.
set -euo pipefail
cd "$(dirname "$0")/.."

home="${OCOP_KAFKA_HOME:-.kafka}"
libs="$home/libs"
want="$(sha256sum kafka/pom.xml | cut -d' ' -f1)"
if [ "$(cat "$libs/.pom-sha256" 2>/dev/null)" = "$want" ] && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
  exit 0
fi
command -v mvn >/dev/null 2>&1 || { echo "mvn (Maven) is missing: run scripts/setup.sh" >&2; exit 1; }
printf '\033[1;34m[setup]\033[0m %s\n' "fetching Kafka jars with Maven into $libs (log: /tmp/ocop-mvn.log)"
mkdir -p "$home"
tmp="$(mktemp -d "$home/libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mvn -B -q -f kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$(cd "$tmp" && pwd)" \
  -DincludeScope=runtime >/tmp/ocop-mvn.log 2>&1 || { tail -30 /tmp/ocop-mvn.log; exit 1; }
echo "$want" >"$tmp/.pom-sha256"
rm -rf "$libs"
mv "$tmp" "$libs"
trap - EXIT
