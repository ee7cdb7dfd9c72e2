# Why this exists: the Pester driver that tools/windows/pester-under-wine.sh runs in the Windows pwsh.exe
# under wine (paths are Windows paths, Z:\...). Like build.ps1's Test task, with two differences:
# - Package.Tests.ps1 is left out. It installs out/packages/RemoteItP2P.*.nupkg with PSResourceGet into
#   child pwsh processes isolated by a fresh HOME: a Windows pwsh ignores HOME (its user module path is
#   Documents\PowerShell\Modules, and wine maps Documents to the Linux $HOME, so it would install into
#   ~/PowerShell/Modules of the build machine); and wine 8.0 finds no file for its -Filter
#   'RemoteItP2P.*.nupkg' (no DOS_DOT wildcard). build.ps1 -Task Test runs it on Linux, with the package
#   that holds both platforms' libraries.
# - The summary is written as JSON for the shell script to print and judge.
param(
    [Parameter(Mandatory)] [string] $PesterModule,
    [Parameter(Mandatory)] [string] $TestPath,
    [Parameter(Mandatory)] [string] $ResultXml,
    [Parameter(Mandatory)] [string] $SummaryJson
)
$ErrorActionPreference = 'Stop'
"PowerShell $($PSVersionTable.PSVersion) ($($PSVersionTable.OS)), PSHOME $PSHOME"
Import-Module $PesterModule
$c = New-PesterConfiguration
$c.Run.Path = $TestPath
$c.Run.ExcludePath = @((Join-Path $TestPath 'Package.Tests.ps1'))
$c.Run.PassThru = $true
$c.Output.Verbosity = 'Detailed'
$c.TestResult.Enabled = $true
$c.TestResult.OutputFormat = 'NUnitXml'
$c.TestResult.OutputPath = $ResultXml
$r = Invoke-Pester -Configuration $c
@{ Passed = $r.PassedCount; Failed = $r.FailedCount; Skipped = $r.SkippedCount; Total = $r.TotalCount; Result = $r.Result } |
    ConvertTo-Json | Set-Content -LiteralPath $SummaryJson -Encoding utf8
