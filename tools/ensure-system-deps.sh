#!/usr/bin/env bash
# Installs the Debian libraries Qt needs when they are missing: offscreen rendering, and the xcb platform plugin that
# opens the window on an X display (Qt >= 6.5 needs libxcb-cursor0; `ldd` on PyQt6's plugins/platforms/libqxcb.so
# lists the rest). Xvfb and x11-utils let the test suite open the real window on a virtual display.
# As root it installs them; otherwise it prints the exact command and fails (the test-only ones: a note, no failure).
set -euo pipefail
packages=(
    libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 python3-venv
    libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-randr0 libxcb-shape0
    libxcb-xinerama0 libxcb-xkb1 libxcb-util1 libx11-xcb1 libxkbcommon-x11-0
)
test_packages=(xvfb x11-utils)

not_installed() {
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

missing=($(not_installed "${packages[@]}"))
# python3-venv is only needed when the interpreter cannot make a venv by itself (pyenv builds can).
if [[ " ${missing[*]} " == *" python3-venv "* ]] && python3 -c "import venv, ensurepip" 2>/dev/null; then
    missing=("${missing[@]/python3-venv}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
missing_for_tests=($(not_installed "${test_packages[@]}"))
[[ ${#missing[@]} -eq 0 && ${#missing_for_tests[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]]; then
    echo "installing Debian packages Qt and its window test need: ${missing[*]} ${missing_for_tests[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" "${missing_for_tests[@]}" >/dev/null
    exit 0
fi
if [[ ${#missing_for_tests[@]} -gt 0 ]]; then
    echo "note: the test of the real window needs: sudo apt-get install -y ${missing_for_tests[*]} (skipped without)" >&2
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "error: missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
