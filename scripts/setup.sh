#!/usr/bin/env bash
# Set up drumdiff in ./.venv on a fresh Debian machine (Python 3.10+).
#   scripts/setup.sh           the daemon and CLI
#   scripts/setup.sh --test    plus the test and evaluation extras, and the Debian packages
#                              the tests drive for real (JACK, Pure Data) when run as root
# GPU users: install the CUDA build of torch into .venv first (see README), then run this.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# Debian libraries the daemon loads (PortAudio for audio out, ALSA for MIDI); the tests also
# drive a real JACK server, Pure Data and liblo's oscsend/oscdump. Installed only when running
# as root with apt.
packages=(libportaudio2 libasound2)
[[ $want_test == 1 ]] && packages+=(jackd2 puredata-core liblo-tools)
# Hydrogen (h2cli) validates and plays the kits `drumdiff kit` writes.
[[ $want_test == 1 ]] && packages+=(hydrogen)
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  missing=()
  for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if (( ${#missing[@]} )); then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch 2.13.0 is the CPU wheel this project is tested with; keep an existing (e.g. CUDA) torch.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q torch==2.13.0
extras="train,openvino"
[[ $want_test == 1 ]] && extras="train,openvino,eval,test"
.venv/bin/pip install -q -e ".[${extras}]"
echo "drumdiff is set up in $(pwd)/.venv"
