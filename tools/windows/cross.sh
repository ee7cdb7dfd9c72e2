#!/usr/bin/env bash
# The Windows (x86_64-pc-windows-gnu) cross build and the wine runner, from Debian packages only.
#
#   tools/windows/cross.sh setup            install the toolchain (apt) and prepare target/win-cross/
#   tools/windows/cross.sh cargo ARGS...    Debian's cargo for the Windows target (build-std), e.g.
#                                           `cross.sh cargo build --release -p connectd -p p2p-ffi`
#   tools/windows/cross.sh wine PROG ARGS   runs a Windows program headless in the project's wine prefix
#   tools/windows/cross.sh env              prints the environment `cargo` gets (for a shell: eval)
#
# Why each piece (facts established by trying; see README "Windows"):
# - rustup cannot download a Windows target here, but Debian ships rustc/cargo 1.96 (rustc-web,
#   cargo-web) and the standard library's source (rust-web-src): cargo's -Zbuild-std compiles std for
#   the target from that source (RUSTC_BOOTSTRAP=1 unlocks the flag on a stable toolchain).
# - std's own dependencies are vendored in library/vendor; cargo resolves them through the same source
#   replacement as ours, so the crate source is one folder of symlinks to both.
# - The mirror's windows_x86_64_gnu crates lack their import libraries (lib/*.a): a GNU ld script named
#   like the missing library groups mingw-w64's import libraries instead.
# - wine 8.0 lacks bcryptprimitives.dll (ProcessPrng), which every Rust program since 1.78 imports: a
#   stand-in DLL in the prefix's system32 fills the gap. Real Windows has it.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state="${P2P_WIN_CROSS_DIR:-$repo/target/win-cross}"
triple=x86_64-pc-windows-gnu
rustc_bin=/usr/bin/rustc
cargo_bin=/usr/bin/cargo
wine_bin=/usr/lib/wine/wine64
packages=(mingw-w64 rustc-web cargo-web rust-web-src wine64)

say() { printf 'win-cross: %s\n' "$*" >&2; }

install_packages() {
  local missing=()
  [ -x "$rustc_bin" ] && "$rustc_bin" --version 2>/dev/null | grep -q '^rustc 1\.9[6-9]' || missing+=(rustc-web cargo-web)
  [ -x "$cargo_bin" ] || missing+=(cargo-web)
  [ -d "$(std_source)" ] || missing+=(rust-web-src)
  command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(mingw-w64)
  [ -x "$wine_bin" ] || missing+=(wine64)
  [ ${#missing[@]} -eq 0 ] && return
  say "installing ${packages[*]} (Debian packages)"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

# The standard library's source, where rust-web-src puts it (found through rustc's sysroot).
std_source() {
  local v
  v=$("$rustc_bin" --version 2>/dev/null | awk '{print $2}') || true
  echo "/usr/src/rustc-${v:-none}/library"
}

# The offline mirror cargo already uses (../shared/cargo-offline.sh wrote it into ~/.cargo/config.toml).
mirror_dir() {
  local cfg="${CARGO_HOME:-$HOME/.cargo}/config.toml"
  sed -n 's/^directory = "\(.*\)"$/\1/p' "$cfg" 2>/dev/null | tail -1
}

prepare_crate_source() {
  local mirror src="$state/crates"
  mirror=$(mirror_dir)
  [ -n "$mirror" ] && [ -d "$mirror" ] || { say "no offline crate mirror configured (run ../shared/cargo-offline.sh)"; exit 1; }
  if [ ! -f "$src/.from" ] || [ "$(cat "$src/.from")" != "$mirror" ]; then
    rm -rf "$src"
    mkdir -p "$src"
    local d
    for d in "$mirror"/* "$(std_source)"/vendor/*; do
      [ -e "$src/$(basename "$d")" ] || ln -s "$d" "$src/$(basename "$d")"
    done
    echo "$mirror" >"$src/.from"
  fi
  mkdir -p "$state/cargo-home"
  cat >"$state/cargo-home/config.toml" <<CFG
# Written by tools/windows/cross.sh: the offline mirror plus the standard library's vendored crates.
[source.crates-io]
replace-with = "win-cross"
[source.win-cross]
directory = "$src"
CFG
}

prepare_linker() {
  mkdir -p "$state/lib"
  # windows-targets 0.52 links `windows.0.52.0`; the mirror's copy has no import library for it.
  local lib
  for lib in windows.0.52.0 windows.0.53.0 windows.0.48.5 windows.0.42.2; do
    cat >"$state/lib/lib$lib.a" <<'LD'
/* GNU ld script: mingw-w64's import libraries stand in for windows-targets' missing one. */
GROUP ( -lkernel32 -lntdll -lws2_32 -liphlpapi -ladvapi32 -luser32 -lbcrypt -luserenv -lole32
        -loleaut32 -lshell32 -lsecur32 -lcrypt32 -lncrypt -ldbghelp -lsynchronization -lmswsock )
LD
  done
  # The cross gcc ignores LIBRARY_PATH: the -L goes through a wrapper set as the target's linker.
  cat >"$state/linker" <<SH
#!/bin/sh
exec x86_64-w64-mingw32-gcc -L "$state/lib" "\$@"
SH
  chmod +x "$state/linker"
}

# A stand-in bcryptprimitives.dll for wine (see the top of this file).
prepare_wine() {
  export WINEPREFIX="$state/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
  unset DISPLAY
  local dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
  [ -f "$dll" ] && [ ! "$repo/tools/windows/bcryptprimitives.c" -nt "$dll" ] && return
  # Tests start several programs at once: one of them prepares the prefix, the others wait.
  mkdir -p "$state"
  exec 9>"$state/.wine.lock"
  flock 9
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    say "creating the wine prefix $WINEPREFIX"
    "$wine_bin" wineboot -i >/dev/null 2>&1 || true
    /usr/lib/wine/wineserver -w || true
  fi
  if [ ! -f "$dll" ] || [ "$repo/tools/windows/bcryptprimitives.c" -nt "$dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -o "$dll.tmp" "$repo/tools/windows/bcryptprimitives.c" \
      "$repo/tools/windows/bcryptprimitives.def" -lbcrypt
    mv "$dll.tmp" "$dll"
  fi
  flock -u 9
  exec 9>&-
}

cargo_env() {
  export CARGO_HOME="$state/cargo-home"
  export RUSTC="$rustc_bin" RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER="$state/linker"
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$repo/tools/windows/cross.sh wine"
  export AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
  # Its own target folder: another rustc's artifacts must not evict the native build's.
  export CARGO_TARGET_DIR="${P2P_WIN_TARGET_DIR:-$repo/target/windows}"
}

setup() {
  install_packages
  mkdir -p "$state"
  prepare_crate_source
  prepare_linker
  prepare_wine
}

cmd=${1:-}
shift || true
case "$cmd" in
  setup) setup ;;
  cargo)
    setup
    cargo_env
    sub=${1:-build}
    shift || true
    # --locked: the workspace's Cargo.lock decides; std's own lockfile entries come from library/.
    exec "$cargo_bin" "$sub" --locked -Zbuild-std=std,panic_unwind --target "$triple" "$@"
    ;;
  wine)
    prepare_wine
    exec "$wine_bin" "$@"
    ;;
  env)
    cargo_env
    env | grep -E '^(CARGO_|RUSTC|RUSTDOC|AR_|CC_)' | sed 's/^/export /'
    echo "export WINEPREFIX=$state/wineprefix WINEDEBUG=-all"
    ;;
  *)
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    [ -z "$cmd" ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2
    ;;
esac
