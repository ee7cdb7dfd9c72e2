#!/usr/bin/env pwsh
<#
.SYNOPSIS
Builds, tests and demonstrates RemoteItP2P.

.DESCRIPTION
Tasks (run in the order given):
  Build  cargo build --release of the native library, connectd and p2p-server for -Runtime (this
         machine's by default; win-x64 from Linux is a cross build: tools/windows/cross.sh installs the
         toolchain from Debian packages); dotnet build of the cmdlets; assembles out/RemoteItP2P/ ready
         for Import-Module (with runtimes/<rid>/native/ and the MAML help), and the executables in
         out/bin/<rid>/.
  Package  Builds linux-x64 and win-x64, assembles one module folder holding both native libraries,
         and makes out/packages/RemoteItP2P.<version>.nupkg (installable with Install-PSResource or
         Install-Module from a folder registered as a repository).
  Test   cargo build --release of every binary, cargo test --workspace --release (unit, property and
         system tests), the NAT lab (tests/natlab/run.sh; Linux and root, otherwise it says SKIP), then
         on Linux the Windows build under wine (tools/windows/cross.sh: the crates' unit tests with
         wine as the runner, then tests/windows_wine.rs; -SkipWindows leaves it out), the package, then
         the Pester tests in Pester/ against real processes (on Linux a second time with PowerShell for
         Windows under wine: tools/windows/pester-under-wine.sh). Writes
         out/TestResults/pester.xml (NUnit) and prints "Pester: N passed, N failed, N skipped". Exits
         non-zero when anything fails.
  Demo   A local server, a target in front of a small web page, a connection, one request through it,
         the connection table, and a clean stop.
  Bench  The benchmark (p2p-bench): the tunnel beside raw TCP, ssh -L and socat; prints a table, the
         goals met or not, and writes out/bench.json. -Quick for the short run.
  Clean  Removes out/ and the cmdlets' bin/ and obj/ (cargo's target/ is left alone; `cargo clean` it).
Installs what it needs when missing: Pester 5.7.1 (from NuGet). PowerShell itself is a .NET global tool:
  dotnet tool install --global PowerShell --version 7.6.9

.EXAMPLE
./build.ps1 -Task Build, Test
.EXAMPLE
./build.ps1 -Task Build -Runtime win-x64
.EXAMPLE
./build.ps1 -Task Package
.EXAMPLE
./build.ps1 -Task Demo
.EXAMPLE
./build.ps1 -Task Bench -Quick
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Package', 'Demo', 'Bench', 'Clean')]
    [string[]] $Task = @('Build'),
    # Build: the platform to build for (default: this machine's). win-x64 from Linux cross-compiles.
    [ValidateSet('linux-x64', 'win-x64')]
    [string] $Runtime,
    # Test: leave out the Windows build and its wine tests (and the package test that needs it).
    [switch] $SkipWindows,
    [ValidateSet('Release', 'Debug')]
    [string] $Configuration = 'Release',
    # Skip `cargo test --workspace` in Test (Pester only).
    [switch] $SkipCargoTest,
    # Skip `cargo build` in Build: assemble the module from the native files already in target/.
    [switch] $SkipCargoBuild,
    # Bench: the short run (about 1-2 minutes) instead of the full one (about 4 minutes).
    [switch] $Quick
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$Root = $PSScriptRoot
$Out = Join-Path $Root 'out'
$ModuleOut = Join-Path $Out 'RemoteItP2P'
$PesterVersion = '5.7.1'

# Get-PwshPath: the PowerShell executable to start child processes with (shared with the tests).
Import-Module (Join-Path $Root 'Pester/Support/P2PLab.psm1') -Force

# Each step with the time since the script started, so a slow CI run shows where its minutes went.
$script:Started = [System.Diagnostics.Stopwatch]::StartNew()
function Write-Step([string] $Text) {
    Write-Host ("==> [{0:hh\:mm\:ss}] {1}" -f $script:Started.Elapsed, $Text) -ForegroundColor Cyan
}

function Invoke-Native {
    <# Runs a program; throws when it fails. #>
    param([string] $File, [string[]] $Arguments)
    Write-Host "    $File $($Arguments -join ' ')"
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$File $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Get-RuntimeId {
    $arch = [System.Runtime.InteropServices.RuntimeInformation]::ProcessArchitecture.ToString().ToLowerInvariant()
    if ($IsWindows) { "win-$arch" } elseif ($IsMacOS) { "osx-$arch" }
    elseif (Test-Path /etc/alpine-release) { "linux-musl-$arch" } else { "linux-$arch" }
}

# What a runtime's build is made of and where cargo puts it. A Windows build on a non-Windows machine is
# the cross build of tools/windows/cross.sh (its own target folder, target/windows/).
function Get-RuntimeBuild([string] $Rid) {
    $profileDir = if ($Configuration -eq 'Release') { 'release' } else { 'debug' }
    $isWin = $Rid -like 'win-*'
    $cross = $isWin -and -not $IsWindows
    $dir = if ($cross) { Join-Path $Root "target/windows/x86_64-pc-windows-gnu/$profileDir" } else { Join-Path $Root "target/$profileDir" }
    $exe = if ($isWin) { '.exe' } else { '' }
    [pscustomobject]@{
        Rid = $Rid; Cross = $cross; Dir = $dir
        Library = if ($isWin) { 'remoteitp2p.dll' } elseif ($Rid -like 'osx-*') { 'libremoteitp2p.dylib' } else { 'libremoteitp2p.so' }
        Programs = @("connectd$exe", "p2p-server$exe")
    }
}

# What a runtime's build compiles: the native library and the two programs.
function Get-CargoBuildArgs {
    $cargoArgs = @('build', '-p', 'p2p-ffi', '-p', 'connectd', '-p', 'p2p-server')
    if ($Configuration -eq 'Release') { $cargoArgs += '--release' }
    $cargoArgs
}

function Invoke-CargoBuild([string] $Rid) {
    $b = Get-RuntimeBuild $Rid
    Write-Step "cargo build $Rid (native library, connectd, p2p-server)"
    $cargoArgs = Get-CargoBuildArgs
    Push-Location $Root
    try {
        if ($b.Cross) { Invoke-Native bash (@((Join-Path $Root 'tools/windows/cross.sh'), 'cargo') + $cargoArgs) }
        else { Invoke-Native cargo $cargoArgs }
    } finally { Pop-Location }
}

# Copies a built file, without its debug information when a strip tool for it is at hand (the release
# profile keeps line tables for backtraces: 60 MB instead of 7 MB for connectd.exe).
function Copy-Stripped([string] $From, [string] $ToDir, [string] $Rid) {
    Copy-Item $From $ToDir
    $copy = Join-Path $ToDir (Split-Path $From -Leaf)
    $strip = if ($Rid -like 'win-*' -and -not $IsWindows) { 'x86_64-w64-mingw32-strip' } elseif (-not $IsWindows) { 'strip' }
    if ($strip -and (Get-Command $strip -ErrorAction SilentlyContinue)) { & $strip --strip-debug $copy }
}

function Invoke-Build([string[]] $Rids = @($(if ($Runtime) { $Runtime } else { Get-RuntimeId }))) {
    if (-not $SkipCargoBuild) { foreach ($rid in $Rids) { Invoke-CargoBuild $rid } }
    Write-Step 'dotnet build (cmdlets)'
    Invoke-Native dotnet @('build', (Join-Path $Root 'cmdlets/RemoteItP2P.csproj'), '-c', $Configuration, '--nologo', '-v', 'quiet')

    Write-Step "assemble $ModuleOut"
    if (Test-Path $ModuleOut) { Remove-Item $ModuleOut -Recurse -Force }
    New-Item -ItemType Directory -Path (Join-Path $ModuleOut 'en-US') -Force | Out-Null
    foreach ($rid in $Rids) {
        $b = Get-RuntimeBuild $rid
        $native = Join-Path $ModuleOut "runtimes/$rid/native"
        $bin = Join-Path $Out "bin/$rid"
        New-Item -ItemType Directory -Path $native, $bin -Force | Out-Null
        Copy-Stripped (Join-Path $b.Dir $b.Library) $native $rid
        foreach ($p in $b.Programs) { Copy-Stripped (Join-Path $b.Dir $p) $bin $rid }
        Write-Host "    $rid executables: $bin"
    }
    Copy-Item (Join-Path $Root "cmdlets/bin/$Configuration/netstandard2.0/RemoteItP2P.dll") $ModuleOut
    foreach ($f in 'RemoteItP2P.psd1', 'RemoteItP2P.psm1', 'RemoteItP2P.Format.ps1xml') { Copy-Item (Join-Path $Root $f) $ModuleOut }
    Copy-Item (Join-Path $Root 'cmdlets/help/about_RemoteItP2P.help.txt') (Join-Path $ModuleOut 'en-US')
    # The MAML help is generated from the compiled cmdlets (syntax, parameters) and cmdlets/help/*.psd1
    # (text, examples), in a child process so this one does not load the module.
    $pwsh = (Get-PwshPath)
    Invoke-Native $pwsh @('-NoProfile', '-NonInteractive', '-File', (Join-Path $Root 'cmdlets/help/New-MamlHelp.ps1'),
        '-ModulePath', $ModuleOut, '-OutFile', (Join-Path $ModuleOut 'en-US/RemoteItP2P.dll-Help.xml'))
    Write-Host "    Import-Module $ModuleOut"
}

function Install-Pester {
    <# Pester $PesterVersion: already installed, or downloaded from NuGet (the package's tools/ folder is the module). #>
    $have = Get-Module -ListAvailable -Name Pester | Where-Object { $_.Version -eq [version]$PesterVersion }
    if ($have) { return }
    $userModules = ($env:PSModulePath -split [System.IO.Path]::PathSeparator)[0]
    $dest = Join-Path $userModules "Pester/$PesterVersion"
    Write-Step "install Pester $PesterVersion into $dest"
    $tmp = Join-Path ([System.IO.Path]::GetTempPath()) ("pester-" + [guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $tmp | Out-Null
    try {
        $nupkg = Join-Path $tmp 'pester.zip'
        $url = "https://api.nuget.org/v3-flatcontainer/pester/$PesterVersion/pester.$PesterVersion.nupkg"
        Invoke-WebRequest -Uri $url -OutFile $nupkg -UseBasicParsing
        Expand-Archive -Path $nupkg -DestinationPath (Join-Path $tmp 'pkg')
        New-Item -ItemType Directory -Path $dest -Force | Out-Null
        Copy-Item (Join-Path $tmp 'pkg/tools/*') $dest -Recurse -Force
    } finally {
        Remove-Item $tmp -Recurse -Force -ErrorAction SilentlyContinue
    }
}

# The NAT lab (tests/natlab/run.sh): real routers in network namespaces. Needs Linux and root; the
# script itself says SKIP (exit 77) where namespaces are not available. Returns a failure text or nothing.
function Invoke-NatLab {
    if (-not $IsLinux) { Write-Host 'NAT lab: SKIP (needs Linux network namespaces)'; return }
    Write-Step 'NAT lab (tests/natlab/run.sh)'
    $env:P2P_BIN_DIR = Join-Path $Root 'target/release'
    try {
        # To the host, not the function's output: the caller collects that output as failure texts.
        & bash (Join-Path $Root 'tests/natlab/run.sh') | Out-Host
        $code = $LASTEXITCODE
    } finally { Remove-Item Env:P2P_BIN_DIR -ErrorAction SilentlyContinue }
    if ($code -eq 77) { Write-Host 'NAT lab: SKIP'; return }
    if ($code -ne 0) { return "NAT lab (exit code $code)" }
}

function Invoke-Test {
    $failed = @()
    $withWindows = $IsLinux -and -not $SkipWindows
    $prebuild = $null
    try {
        if (-not $SkipCargoTest) {
            # One profile for everything: the system tests run the binaries of the profile they were built
            # in, and building debug and release both would double the build time.
            # --lib as well: the test build of the native library (p2p-ffi-testhooks) for Pester's panic test.
            Write-Step 'cargo build --release --workspace --bins --lib'
            Push-Location $Root
            try {
                & cargo build --release --workspace --bins --lib
                if ($LASTEXITCODE -ne 0) { throw "cargo build failed (exit code $LASTEXITCODE)" }
                if ($withWindows) { $prebuild = Start-WindowsPrebuild }
                Write-Step 'cargo test --workspace --release --no-fail-fast'
                & cargo test --workspace --release --no-fail-fast
                if ($LASTEXITCODE -ne 0) { $failed += "cargo test (exit code $LASTEXITCODE)" }
            } finally { Pop-Location }
            $failed += Invoke-NatLab
        }
        if ($withWindows) {
            Wait-WindowsPrebuild $prebuild
            # The package holds both platforms' libraries; its Pester test installs it.
            Invoke-Package
            if (-not $SkipCargoTest) { $failed += Invoke-WindowsTest }
            $env:REMOTEITP2P_PACKAGE_DIR = Join-Path $Out 'packages'
        } elseif (-not (Test-Path (Join-Path $ModuleOut 'RemoteItP2P.psd1'))) { Invoke-Build }
        Install-Pester
        Write-Step 'Pester'
        $results = Join-Path $Out 'TestResults'
        New-Item -ItemType Directory -Path $results -Force | Out-Null
        $xml = Join-Path $results 'pester.xml'
        # The package test installs out/packages, which only the Windows part makes.
        $excluded = if ($withWindows) { '' } else { "'$(Join-Path $Root 'Pester/Package.Tests.ps1')'" }
        $summary = Join-Path $results 'pester-summary.json'
        # A child process: the tests load the module and the native library, start and remove sessions, and
        # must not share this process's state.
        $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module Pester -RequiredVersion $PesterVersion
`$c = New-PesterConfiguration
`$c.Run.Path = '$(Join-Path $Root 'Pester')'
`$c.Run.ExcludePath = @($excluded)
`$c.Run.PassThru = `$true
`$c.Output.Verbosity = 'Detailed'
`$c.TestResult.Enabled = `$true
`$c.TestResult.OutputFormat = 'NUnitXml'
`$c.TestResult.OutputPath = '$xml'
`$r = Invoke-Pester -Configuration `$c
@{ Passed = `$r.PassedCount; Failed = `$r.FailedCount; Skipped = `$r.SkippedCount; Total = `$r.TotalCount; Result = `$r.Result } |
    ConvertTo-Json | Set-Content -LiteralPath '$summary'
"@
        $env:REMOTEITP2P_MODULE_PATH = $ModuleOut
        $pwsh = (Get-PwshPath)
        & $pwsh -NoProfile -NonInteractive -Command $script
        $exit = $LASTEXITCODE
        if (Test-Path $summary) {
            $s = Get-Content $summary -Raw | ConvertFrom-Json
            Write-Host "Test results (NUnit XML): $xml"
            Write-Host "Pester: $($s.Passed) passed, $($s.Failed) failed, $($s.Skipped) skipped"
            if ($s.Failed -gt 0 -or $s.Result -ne 'Passed') { $failed += "Pester ($($s.Failed) failed)" }
        } else {
            $failed += "Pester did not run to the end (exit code $exit)"
        }
        if ($withWindows) {
            # The same suite with PowerShell for Windows under wine, against the win-x64 module and the
            # Windows server and target.
            Write-Step 'Pester with PowerShell for Windows under wine (tools/windows/pester-under-wine.sh)'
            & bash (Join-Path $Root 'tools/windows/pester-under-wine.sh') | Out-Host
            if ($LASTEXITCODE -ne 0) { $failed += "Pester under wine (exit code $LASTEXITCODE)" }
        }
    } finally {
        # A run stopped early leaves no compiler behind.
        if ($prebuild -and -not $prebuild.HasExited) { $prebuild.Kill($true) }
    }
    if ($failed) { throw "Test failed: $($failed -join '; ')" }
}

# One module for both platforms, as a NuGet package in a folder repository (out/packages). Publishing
# goes through PSResourceGet (part of PowerShell 7.4+) with a repository registered for the moment.
function Invoke-Package {
    Invoke-Build @('linux-x64', 'win-x64')
    $packages = Join-Path $Out 'packages'
    if (Test-Path $packages) { Remove-Item $packages -Recurse -Force }
    New-Item -ItemType Directory -Path $packages | Out-Null
    $repo = 'RemoteItP2P-build-' + [guid]::NewGuid().ToString('N').Substring(0, 8)
    Write-Step "package $ModuleOut into $packages"
    Register-PSResourceRepository -Name $repo -Uri $packages -Trusted
    try { Publish-PSResource -Path $ModuleOut -Repository $repo }
    finally { Unregister-PSResourceRepository -Name $repo }
    $nupkg = Get-ChildItem $packages -Filter 'RemoteItP2P.*.nupkg' | Select-Object -First 1
    if (-not $nupkg) { throw "Publish-PSResource made no package in $packages" }
    Add-Type -AssemblyName System.IO.Compression.FileSystem
    $zip = [System.IO.Compression.ZipFile]::OpenRead($nupkg.FullName)
    try { $entries = $zip.Entries.FullName } finally { $zip.Dispose() }
    foreach ($want in 'runtimes/win-x64/native/remoteitp2p.dll', 'runtimes/linux-x64/native/libremoteitp2p.so', 'RemoteItP2P.psd1', 'RemoteItP2P.dll') {
        if ($entries -notcontains $want) { throw "$($nupkg.Name) lacks $want" }
    }
    Write-Host "    $($nupkg.FullName) ($([math]::Round($nupkg.Length / 1MB, 1)) MB)"
}

# The crates with Windows code whose unit tests run under wine, and the test build of the library.
$WindowsUnitTestArgs = @('--release', '-p', 'p2p-link', '-p', 'p2p-net', '-p', 'connectd', '-p', 'p2p-ffi',
    '-p', 'p2p-ffi-testhooks', '-p', 'p2p-config')
$WindowsTestLibraryArgs = @('--release', '-p', 'p2p-ffi-testhooks')

# The Windows cross build takes about 12 minutes of CPU, while the Linux system tests and the NAT lab
# mostly wait on sockets and timers. So Test starts the cross compilations in the background at the
# lowest priority (the tests keep the CPU whenever they want it) and the Windows steps later find them
# done. Nothing is judged here: those steps run the same cargo commands again, which report any error.
function Start-WindowsPrebuild {
    $cross = Join-Path $Root 'tools/windows/cross.sh'
    $log = Join-Path $Out 'windows-prebuild.log'
    New-Item -ItemType Directory -Path $Out -Force | Out-Null
    $steps = @(
        (@('cargo') + (Get-CargoBuildArgs)),
        (@('cargo', 'test') + $WindowsUnitTestArgs + @('--no-run')),
        (@('cargo', 'build') + $WindowsTestLibraryArgs)
    ) | ForEach-Object { "bash '$cross' $($_ -join ' ')" }
    Write-Step "Windows cross build in the background at the lowest priority (log: $log)"
    Start-Process -FilePath nice -ArgumentList @('-n', '19', 'bash', '-c', "`"$($steps -join '; ')`"") `
        -WorkingDirectory $Root -RedirectStandardOutput $log -RedirectStandardError "$log.err" -PassThru
}

function Wait-WindowsPrebuild($Process) {
    if (-not $Process) { return }
    Write-Step 'waiting for the background Windows cross build'
    $Process.WaitForExit()
    Write-Host "    background Windows cross build done (exit code $($Process.ExitCode))"
}

# The Windows build under wine (Linux only): the unit tests of the crates with Windows code, run by wine
# as cargo's runner, then the system tests of connectd.exe and remoteitp2p.dll (tests/windows_wine.rs).
# Returns failure texts.
function Invoke-WindowsTest {
    $failed = @()
    $cross = Join-Path $Root 'tools/windows/cross.sh'
    Push-Location $Root
    try {
        # The crates with Windows code (sockets, console signals, the C ABI's panic boundary, paths).
        Write-Step 'cargo test --target x86_64-pc-windows-gnu (under wine): p2p-link, p2p-net, connectd, p2p-ffi (and its test build), p2p-config'
        # Their output to the host: this function's output is its list of failures.
        & bash $cross cargo test @WindowsUnitTestArgs --no-fail-fast | Out-Host
        if ($LASTEXITCODE -ne 0) { $failed += "Windows unit tests under wine (exit code $LASTEXITCODE)" }
        # The test build of the library into the target folder, for the Pester panic test under wine.
        & bash $cross cargo build @WindowsTestLibraryArgs | Out-Host
        if ($LASTEXITCODE -ne 0) { $failed += "cargo build p2p-ffi-testhooks for Windows (exit code $LASTEXITCODE)" }
        Write-Step 'tests/windows_wine.rs (connectd.exe and remoteitp2p.dll under wine)'
        $env:P2P_WIN_BIN_DIR = (Get-RuntimeBuild 'win-x64').Dir
        try {
            & cargo test --release -p p2p-system-tests --test windows_wine -- --ignored --test-threads 2 | Out-Host
            if ($LASTEXITCODE -ne 0) { $failed += "wine system tests (exit code $LASTEXITCODE)" }
        } finally { Remove-Item Env:P2P_WIN_BIN_DIR -ErrorAction SilentlyContinue }
    } finally { Pop-Location }
    $failed
}

function Invoke-Demo {
    if (-not (Test-Path (Join-Path $ModuleOut 'RemoteItP2P.psd1'))) { Invoke-Build }
    $pwsh = (Get-PwshPath)
    $env:REMOTEITP2P_MODULE_PATH = $ModuleOut
    & $pwsh -NoProfile -NonInteractive -File (Join-Path $Root 'Pester/Support/Demo.ps1')
    if ($LASTEXITCODE -ne 0) { throw "The demo failed (exit code $LASTEXITCODE)" }
}

# The benchmark: the release binaries beside raw TCP, ssh -L and socat, on loopback. Not a test:
# it prints figures and goals met or not. `-Quick` for the short run.
function Invoke-Bench {
    # The module too: the connect section times New-P2PConnection in this PowerShell.
    Invoke-Build
    Write-Step 'cargo build --release (p2p-server, connectd, p2p-bench)'
    Push-Location $Root
    try {
        Invoke-Native cargo @('build', '--release', '-p', 'p2p-server', '-p', 'connectd', '-p', 'p2p-bench')
        # This PowerShell (a dotnet tool's process is `dotnet`, so not the process path).
        $pwsh = Join-Path $PSHOME $(if ($IsWindows -or $PSVersionTable.PSEdition -eq 'Desktop') { 'pwsh.exe' } else { 'pwsh' })
        if (-not (Test-Path $pwsh)) { $pwsh = 'pwsh' }
        $benchArgs = @('--json', (Join-Path $Out 'bench.json'),
            '--module', (Join-Path $ModuleOut 'RemoteItP2P.psd1'), '--pwsh', $pwsh)
        if ($Quick) { $benchArgs += '--quick' }
        New-Item -ItemType Directory -Path $Out -Force | Out-Null
        $exe = if ([System.Environment]::OSVersion.Platform -eq 'Win32NT') { 'p2p-bench.exe' } else { 'p2p-bench' }
        Invoke-Native (Join-Path $Root "target/release/$exe") $benchArgs
    } finally { Pop-Location }
}

function Invoke-Clean {
    Write-Step 'clean'
    foreach ($p in $Out, (Join-Path $Root 'cmdlets/bin'), (Join-Path $Root 'cmdlets/obj')) {
        if (Test-Path $p) { Remove-Item $p -Recurse -Force }
    }
}

foreach ($t in $Task) {
    switch ($t) {
        'Build' { Invoke-Build }
        'Test' { Invoke-Test }
        'Package' { Invoke-Package }
        'Demo' { Invoke-Demo }
        'Bench' { Invoke-Bench }
        'Clean' { Invoke-Clean }
    }
}
