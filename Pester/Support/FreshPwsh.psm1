# A PowerShell process as a new user would have it: its own HOME (so its own user module path and
# PSResourceGet repository list), no inherited module path, no server settings. Used by the tests that
# install the package (Package.Tests.ps1, Readme.Tests.ps1).

Set-StrictMode -Version Latest
# Get-PwshPath
Import-Module (Join-Path $PSScriptRoot 'P2PLab.psm1')

function Invoke-PwshInFreshHome {
    <# Runs pwsh with $Arguments; returns ExitCode, Out (stdout) and All (stdout and stderr). #>
    param(
        [Parameter(Mandatory)] [string] $HomeDir,
        [Parameter(Mandatory)] [string[]] $Arguments,
        [string] $UserProfile = $HomeDir
    )
    $psi = [System.Diagnostics.ProcessStartInfo]::new((Get-PwshPath))
    foreach ($a in '-NoProfile', '-NonInteractive') { $psi.ArgumentList.Add($a) }
    foreach ($a in $Arguments) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    $psi.Environment['HOME'] = $HomeDir
    $psi.Environment['USERPROFILE'] = $UserProfile
    # pwsh builds its default module path (user, shared, $PSHOME) when none is inherited.
    foreach ($v in 'XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'PSModulePath', 'REMOTEITP2P_NATIVE_LIB', 'P2P_SERVER', 'P2P_SERVER_KEY') {
        $psi.Environment.Remove($v) | Out-Null
    }
    $p = [System.Diagnostics.Process]::Start($psi)
    $err = $p.StandardError.ReadToEndAsync()
    $out = $p.StandardOutput.ReadToEnd()
    $p.WaitForExit()
    [pscustomobject]@{ ExitCode = $p.ExitCode; Out = $out; All = "$out`n$($err.Result)" }
}

Export-ModuleMember -Function Invoke-PwshInFreshHome
