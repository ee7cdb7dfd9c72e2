#!/usr/bin/env pwsh
<#
.SYNOPSIS
Builds, tests and demonstrates RemoteItP2P.

.DESCRIPTION
Tasks (run in the order given):
  Build  cargo build --release of the native library, connectd and p2p-server; dotnet build of the
         cmdlets; assembles out/RemoteItP2P/ ready for Import-Module (with runtimes/<rid>/native/ and the
         MAML help).
  Test   cargo build --release of every binary, cargo test --workspace --release (unit, property and
         system tests), the NAT lab (tests/natlab/run.sh; Linux and root, otherwise it says SKIP), then
         the Pester tests in Pester/ against real processes. Writes
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
./build.ps1 -Task Demo
.EXAMPLE
./build.ps1 -Task Bench -Quick
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Bench', 'Clean')]
    [string[]] $Task = @('Build'),
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

function Write-Step([string] $Text) { Write-Host "==> $Text" -ForegroundColor Cyan }

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

function Get-NativeLibraryName {
    if ($IsWindows) { 'remoteitp2p.dll' } elseif ($IsMacOS) { 'libremoteitp2p.dylib' } else { 'libremoteitp2p.so' }
}

function Invoke-CargoBuild {
    Write-Step 'cargo build (native library, connectd, p2p-server)'
    $cargoArgs = @('build', '-p', 'p2p-ffi', '-p', 'connectd', '-p', 'p2p-server')
    if ($Configuration -eq 'Release') { $cargoArgs += '--release' }
    Push-Location $Root
    try { Invoke-Native cargo $cargoArgs } finally { Pop-Location }
}

function Invoke-Build {
    if (-not $SkipCargoBuild) { Invoke-CargoBuild }
    Write-Step 'dotnet build (cmdlets)'
    Invoke-Native dotnet @('build', (Join-Path $Root 'cmdlets/RemoteItP2P.csproj'), '-c', $Configuration, '--nologo', '-v', 'quiet')

    Write-Step "assemble $ModuleOut"
    if (Test-Path $ModuleOut) { Remove-Item $ModuleOut -Recurse -Force }
    $native = Join-Path $ModuleOut "runtimes/$(Get-RuntimeId)/native"
    New-Item -ItemType Directory -Path $native, (Join-Path $ModuleOut 'en-US') -Force | Out-Null
    $profileDir = if ($Configuration -eq 'Release') { 'release' } else { 'debug' }
    Copy-Item (Join-Path $Root "target/$profileDir/$(Get-NativeLibraryName)") $native
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
    if (-not $SkipCargoTest) {
        # One profile for everything: the system tests run the binaries of the profile they were built
        # in, and building debug and release both would double the build time.
        Write-Step 'cargo build --release --workspace --bins'
        Push-Location $Root
        try {
            & cargo build --release --workspace --bins
            if ($LASTEXITCODE -ne 0) { throw "cargo build failed (exit code $LASTEXITCODE)" }
            Write-Step 'cargo test --workspace --release --no-fail-fast'
            & cargo test --workspace --release --no-fail-fast
            if ($LASTEXITCODE -ne 0) { $failed += "cargo test (exit code $LASTEXITCODE)" }
        } finally { Pop-Location }
        $failed += Invoke-NatLab
    }
    if (-not (Test-Path (Join-Path $ModuleOut 'RemoteItP2P.psd1'))) { Invoke-Build }
    Install-Pester
    Write-Step 'Pester'
    $results = Join-Path $Out 'TestResults'
    New-Item -ItemType Directory -Path $results -Force | Out-Null
    $xml = Join-Path $results 'pester.xml'
    $summary = Join-Path $results 'pester-summary.json'
    # A child process: the tests load the module and the native library, start and remove sessions, and
    # must not share this process's state.
    $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module Pester -RequiredVersion $PesterVersion
`$c = New-PesterConfiguration
`$c.Run.Path = '$(Join-Path $Root 'Pester')'
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
    if ($failed) { throw "Test failed: $($failed -join '; ')" }
}

function Invoke-Demo {
    if (-not (Test-Path (Join-Path $ModuleOut 'RemoteItP2P.psd1'))) { Invoke-Build }
    $pwsh = (Get-PwshPath)
    $env:REMOTEITP2P_MODULE_PATH = $ModuleOut
    & $pwsh -NoProfile -NonInteractive -File (Join-Path $Root 'Pester/Support/Demo.ps1')
    if ($LASTEXITCODE -ne 0) { throw "The demo failed (exit code $LASTEXITCODE)" }
}

# The benchmark (issue 6): the release binaries beside raw TCP, ssh -L and socat, on loopback. Not a test:
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
        'Demo' { Invoke-Demo }
        'Bench' { Invoke-Bench }
        'Clean' { Invoke-Clean }
    }
}
