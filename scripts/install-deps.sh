#!/usr/bin/env bash
# Installs the Debian 12 packages newtermsd needs to build, test and run.
# Safe to run again; does nothing when everything is present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libhiredis-dev
      zlib1g-dev check redis-server curl python3 python3-yaml valgrind)
# TLS to Redis: OpenSSL to build against, and the openssl tool the TLS tests make certificates with.
pkgs+=(libssl-dev openssl)
# Alert outputs: libcurl (OpenSSL flavour) to build against and its runtime.
pkgs+=(libcurl4-openssl-dev libcurl4)
# GeoIP enrichment (service/geoip.c); brings libmaxminddb0.
pkgs+=(libmaxminddb-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
