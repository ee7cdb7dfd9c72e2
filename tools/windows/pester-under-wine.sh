#!/usr/bin/env bash
# The Pester suite (Pester/) run by PowerShell for Windows under wine, against the win-x64 module: the
# managed RemoteItP2P.dll with runtimes/win-x64/native/remoteitp2p.dll, and the lab's p2p-server.exe and
# connectd.exe (the Windows build too), all Windows code under wine 8.0.
#
#   tools/windows/pester-under-wine.sh            build pwsh.exe when needed, then run the suite
#   tools/windows/pester-under-wine.sh build      only build pwsh.exe (target/win-pwsh/pwsh/pwsh.exe)
#   tools/windows/pester-under-wine.sh pwsh ARGS  run that pwsh.exe under wine with ARGS (for a look around)
#
# Prints "Pester (Windows PowerShell under wine): N passed, N failed, N skipped"; writes
# out/TestResults/pester-wine.xml (NUnit); exits non-zero when a test fails or the run does not finish.
#
# Inputs (defaults in brackets):
#   REMOTEITP2P_MODULE_PATH   the module folder [out/RemoteItP2P]; must hold runtimes/win-x64/native/
#                             remoteitp2p.dll (./build.ps1 -Task Package makes it). A Unix path.
#   P2P_WINE_BIN_DIR          the folder of p2p-server.exe and connectd.exe [out/bin/win-x64 when both are
#                             there, else target/windows/x86_64-pc-windows-gnu/release]. A Unix path.
#   REMOTEITP2P_PACKAGE_DIR   the folder of RemoteItP2P.*.nupkg for Readme.Tests.ps1 [out/packages]. Unix.
#   P2P_WINE_PESTER_PATH      the folder of the *.Tests.ps1 files [Pester]. A Unix path.
#   P2P_WINE_PESTER_TIMEOUT   seconds before the run is stopped [900]
#
# Why each piece (each found by a failure; see tools/windows/pwsh/*):
# - There is no PowerShell for Windows to install here: tools/windows/pwsh/pwsh.csproj makes one with
#   dotnet publish from the Microsoft.PowerShell.SDK package (self-contained win-x64, ~120 MB, cached).
# - The wine prefix is tools/windows/cross.sh's (with its stand-in bcryptprimitives.dll for the Rust
#   programs). cross.sh runs wine with WINEDLLOVERRIDES="mscoree,mshtml=", but .NET needs wine's builtin
#   mscoree.dll (wine's loader maps IL-only assemblies such as System.Runtime.dll through it): this script
#   sets WINEDLLOVERRIDES="mshtml=" for its own processes only. No setting of the prefix is changed (pwsh
#   only keeps its caches in the prefix's AppData); connectd.exe and p2p-server.exe run as before.
# - P2P_UNDER_WINE=1 for the tests: the one that needs real Windows (Readme.Tests.ps1's install in a fresh
#   pwsh) skips itself under wine. Wine maps Documents to the Linux $HOME: no test may install modules.
# - 127.0.0.2 (the lab server's third UDP port) binds and reports 127.0.0.2, but wine 8.0 binds a UDP
#   socket given 127.0.0.2 to 0.0.0.0 on the Linux side (ss shows 0.0.0.0:port): it also receives
#   what is sent to 127.0.0.1 at that port, and its replies leave from 127.0.0.1. No test depends on it.
# - DOTNET_EnableWriteXorExecute=0: CoreCLR's W^X double mapping fails under wine 8.0 ("Internal CLR error
#   (0x80131506)" in a finalizer).
# - PowerShell's console host needs a console, and wine makes one only when stdin is a terminal: script(1)
#   gives pwsh.exe a pty for stdin; stdout and stderr stay pipes (plain text), and script -e passes the
#   exit code on.
# - The Pester module: the one build.ps1's Install-Pester put in the Linux pwsh's user module folder, else
#   the NuGet package (its tools/ folder is the module), copied to target/win-pwsh/Modules.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
src="$repo/tools/windows/pwsh"
state="$repo/target/win-pwsh"
pwsh_dir="$state/pwsh"
pester_version=5.7.1
wine_bin=/usr/lib/wine/wine64

say() { printf 'pester-under-wine: %s\n' "$*" >&2; }

# A Unix path as wine sees it (drive Z: is /).
winpath() {
  local p
  p=$(realpath -m "$1")
  p=${p//\//\\}
  printf 'Z:%s' "$p"
}

build_pwsh() {
  # Up to date when the inputs (these files and the SDK version) are those of the last publish.
  local stamp="$state/pwsh.stamp" want
  want=$( (cd "$src" && sha256sum pwsh.csproj Program.cs powershell.config.json wine-fixes.ps1; dotnet --version) | sha256sum | cut -d' ' -f1)
  if [ -x "$pwsh_dir/pwsh.exe" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  say "dotnet publish $src/pwsh.csproj -> $pwsh_dir (self-contained win-x64, Microsoft.PowerShell.SDK)"
  rm -rf "$pwsh_dir" "$stamp"
  mkdir -p "$state"
  # --artifacts-path: bin/ and obj/ under target/, not in the source folder.
  DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 nice dotnet publish "$src/pwsh.csproj" -c Release \
    --artifacts-path "$state/artifacts" -o "$pwsh_dir" --nologo -v quiet
  [ -f "$pwsh_dir/Modules/Microsoft.PowerShell.Utility/Microsoft.PowerShell.Utility.psd1" ] ||
    { say "the publish left no \$PSHOME/Modules in $pwsh_dir"; exit 1; }
  echo "$want" >"$stamp"
}

# The modules the official PowerShell packages put in $PSHOME/Modules besides those of the SDK package
# (they come from the PowerShell Gallery when PowerShell is built): Install-PSResource and
# Register-PSResourceRepository (the README's install steps), Expand-Archive, Start-ThreadJob. They are
# platform-neutral managed code: copied from the PowerShell that runs build.ps1 ($PSHOME of pwsh on PATH).
add_gallery_modules() {
  local linux_pwsh home m
  linux_pwsh=$(command -v pwsh || true)
  [ -n "$linux_pwsh" ] || [ ! -x "$HOME/.dotnet/tools/pwsh" ] || linux_pwsh="$HOME/.dotnet/tools/pwsh"
  local want=(Microsoft.PowerShell.PSResourceGet Microsoft.PowerShell.Archive Microsoft.PowerShell.ThreadJob PackageManagement PowerShellGet)
  local missing=()
  for m in "${want[@]}"; do [ -d "$pwsh_dir/Modules/$m" ] || missing+=("$m"); done
  [ ${#missing[@]} -eq 0 ] && return
  if [ -z "$linux_pwsh" ]; then say "no pwsh on PATH: \$PSHOME/Modules lacks ${missing[*]}"; return; fi
  home=$("$linux_pwsh" -NoProfile -NonInteractive -Command '$PSHOME')
  for m in "${missing[@]}"; do
    if [ -d "$home/Modules/$m" ]; then cp -a "$home/Modules/$m" "$pwsh_dir/Modules/"; else say "no $m in $home/Modules"; fi
  done
}

install_pester() {
  local dest="$state/Modules/Pester/$pester_version"
  [ -f "$dest/Pester.psd1" ] && return
  rm -rf "$dest"
  mkdir -p "$dest"
  local d
  for d in "${XDG_DATA_HOME:-$HOME/.local/share}/powershell/Modules/Pester/$pester_version" \
           "/usr/local/share/powershell/Modules/Pester/$pester_version"; do
    if [ -f "$d/Pester.psd1" ]; then
      say "Pester $pester_version from $d"
      cp -a "$d/." "$dest/"
      return
    fi
  done
  say "Pester $pester_version from nuget.org"
  local tmp
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/pester.nupkg" "https://api.nuget.org/v3-flatcontainer/pester/$pester_version/pester.$pester_version.nupkg"
  unzip -q "$tmp/pester.nupkg" 'tools/*' -d "$tmp/pkg"
  cp -a "$tmp/pkg/tools/." "$dest/"
  rm -rf "$tmp"
}

wine_env() {
  local prefix="$repo/target/win-cross/wineprefix"
  # The project's prefix, with the stand-in bcryptprimitives.dll (created or refreshed by cross.sh).
  if [ ! -f "$prefix/system.reg" ] || [ ! -f "$prefix/drive_c/windows/system32/bcryptprimitives.dll" ]; then
    bash "$repo/tools/windows/cross.sh" setup
  fi
  export WINEPREFIX="$prefix" WINEDEBUG=-all
  # Not cross.sh's "mscoree,mshtml=": .NET needs wine's builtin mscoree.dll. mshtml= skips the Gecko prompt.
  export WINEDLLOVERRIDES="mshtml="
  export DOTNET_EnableWriteXorExecute=0 DOTNET_CLI_TELEMETRY_OPTOUT=1
  # Plain output: no ANSI colours from $PSStyle in the log.
  export NO_COLOR=1
  unset DISPLAY WAYLAND_DISPLAY
  # What a Linux pwsh (build.ps1) puts in its environment means nothing to a Windows one.
  # (REMOTEITP2P_NATIVE_LIB would make the module load that file instead of its win-x64 library.)
  unset PSModulePath POWERSHELL_DISTRIBUTION_CHANNEL PSExecutionPolicyPreference REMOTEITP2P_NATIVE_LIB
}

# Runs pwsh.exe under wine: stdin a pty, stdout and stderr passed through, its exit code returned.
# (Each start prints "wine: Read access denied for device L"\\??\\Z:\\", FS volume label and serial are
# not available." on stderr: harmless.)
run_pwsh() {
  local q=() a
  for a in "$wine_bin" "$pwsh_dir/pwsh.exe" "$@"; do q+=("$(printf '%q' "$a")"); done
  "${run_prefix[@]}" script -qec "nice ${q[*]} >&4 2>&3 4>&- 3>&-" /dev/null 3>&2 4>&1 >/dev/null </dev/null
}
run_prefix=()

run_suite() {
  local module="${REMOTEITP2P_MODULE_PATH:-$repo/out/RemoteItP2P}"
  [ -f "$module/runtimes/win-x64/native/remoteitp2p.dll" ] ||
    { say "$module has no runtimes/win-x64/native/remoteitp2p.dll: run ./build.ps1 -Task Package first"; exit 1; }
  local bin="${P2P_WINE_BIN_DIR:-}"
  if [ -z "$bin" ]; then
    bin="$repo/out/bin/win-x64"
    [ -f "$bin/p2p-server.exe" ] && [ -f "$bin/connectd.exe" ] || bin="$repo/target/windows/x86_64-pc-windows-gnu/release"
  fi
  [ -f "$bin/p2p-server.exe" ] && [ -f "$bin/connectd.exe" ] ||
    { say "no p2p-server.exe and connectd.exe in $bin: run ./build.ps1 -Task Package first"; exit 1; }
  local results="$repo/out/TestResults"
  mkdir -p "$results"
  rm -f "$results/pester-wine.xml" "$results/pester-wine-summary.json"

  # For the tests (Pester/Support/P2PLab.psm1, Pester/*.Tests.ps1): Windows paths.
  export REMOTEITP2P_MODULE_PATH REMOTEITP2P_BIN_DIR REMOTEITP2P_PACKAGE_DIR P2P_UNDER_WINE=1
  REMOTEITP2P_MODULE_PATH=$(winpath "$module")
  REMOTEITP2P_BIN_DIR=$(winpath "$bin")
  REMOTEITP2P_PACKAGE_DIR=$(winpath "${REMOTEITP2P_PACKAGE_DIR:-$repo/out/packages}")
  # The README's blocks (Readme.Tests.ps1) use paths relative to the repository, as a user would.
  cd "$repo"
  say "module $REMOTEITP2P_MODULE_PATH, binaries $REMOTEITP2P_BIN_DIR"
  local code=0
  run_prefix=(timeout --kill-after=20 "${P2P_WINE_PESTER_TIMEOUT:-900}")
  run_pwsh -NoProfile -NonInteractive -File "$(winpath "$src/run-pester.ps1")" \
    -PesterModule "$(winpath "$state/Modules/Pester/$pester_version/Pester.psd1")" \
    -TestPath "$(winpath "${P2P_WINE_PESTER_PATH:-$repo/Pester}")" \
    -ResultXml "$(winpath "$results/pester-wine.xml")" \
    -SummaryJson "$(winpath "$results/pester-wine-summary.json")" || code=$?
  local summary="$results/pester-wine-summary.json"
  if [ ! -f "$summary" ]; then
    [ "$code" -eq 124 ] && say "stopped after ${P2P_WINE_PESTER_TIMEOUT:-900} s"
    echo "Pester (Windows PowerShell under wine): did not run to the end (exit code $code)"
    exit 1
  fi
  local passed failed skipped result
  read -r passed failed skipped result < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1], encoding="utf-8-sig")); print(s["Passed"], s["Failed"], s["Skipped"], s["Result"])' "$summary")
  echo "Test results (NUnit XML): $results/pester-wine.xml"
  echo "Pester (Windows PowerShell under wine): $passed passed, $failed failed, $skipped skipped"
  if [ "$failed" -ne 0 ] || [ "$result" != Passed ] || [ "$code" -ne 0 ]; then exit 1; fi
}

cmd=${1:-test}
case "$cmd" in
  build) build_pwsh ;;
  pwsh)
    shift
    build_pwsh
    add_gallery_modules
    wine_env
    run_pwsh "$@"
    ;;
  test)
    [ -x "$wine_bin" ] || { say "no $wine_bin: run tools/windows/cross.sh setup"; exit 1; }
    build_pwsh
    add_gallery_modules
    install_pester
    wine_env
    run_suite
    ;;
  *)
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2
    ;;
esac
