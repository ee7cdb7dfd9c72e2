# The module package: build.ps1 -Task Package makes out/packages/RemoteItP2P.<version>.nupkg
# holding both platforms' native libraries. Here it is installed the way a user installs it, from a
# folder registered as a repository, into an empty module path (a fresh HOME), then imported by name in
# a fresh process that makes a connection to a real lab. build.ps1 -Task Test packages first and sets
# REMOTEITP2P_PACKAGE_DIR.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'Support/P2PLab.psm1') -Force
    Import-Module (Join-Path $PSScriptRoot 'Support/FreshPwsh.psm1') -Force
    $script:PackageDir = if ($env:REMOTEITP2P_PACKAGE_DIR) { $env:REMOTEITP2P_PACKAGE_DIR } else { Join-Path $PSScriptRoot '../out/packages' }
    $script:Nupkg = Get-ChildItem -LiteralPath $script:PackageDir -Filter 'RemoteItP2P.*.nupkg' -ErrorAction SilentlyContinue |
        Select-Object -First 1
    $script:Lab = Start-P2PLab

    # Runs a script in a fresh pwsh (Support/FreshPwsh.psm1); returns its output lines, throws with them
    # when it fails.
    function script:Invoke-FreshPwsh([string] $HomeDir, [string] $Script) {
        $r = Invoke-PwshInFreshHome -HomeDir $HomeDir -Arguments '-Command', $Script
        if ($r.ExitCode -ne 0) { throw "pwsh exited with $($r.ExitCode):`n$($r.All)" }
        @($r.Out -split "`r?`n" | Where-Object { $_ })
    }
}

AfterAll { Stop-P2PLab $script:Lab }

Describe 'The RemoteItP2P package' {
    It 'exists and holds the module with both platforms'' native libraries' {
        $script:Nupkg | Should -Not -BeNullOrEmpty -Because "build.ps1 -Task Package writes it to $script:PackageDir"
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [System.IO.Compression.ZipFile]::OpenRead($script:Nupkg.FullName)
        try { $entries = @($zip.Entries.FullName) } finally { $zip.Dispose() }
        $entries | Should -Contain 'RemoteItP2P.psd1'
        $entries | Should -Contain 'RemoteItP2P.dll'
        $entries | Should -Contain 'runtimes/win-x64/native/remoteitp2p.dll'
        $entries | Should -Contain 'runtimes/linux-x64/native/libremoteitp2p.so'
        $entries | Should -Contain 'en-US/RemoteItP2P.dll-Help.xml'
    }

    It 'carries no test hook: no panic hook, no driver knob in either native library or the programs' {
        $script:Nupkg | Should -Not -BeNullOrEmpty
        $hooks = 'p2p_test_inject_panic', 'P2P_DISABLE_DIRECT', 'P2P_RELAY_OVERRIDE', 'P2P_REKEY_BYTES'
        function Test-Contains([byte[]] $Bytes, [string] $Text) {
            # Latin-1 keeps one character per byte, so a string search finds the ASCII name.
            [System.Text.Encoding]::Latin1.GetString($Bytes).Contains($Text)
        }
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [System.IO.Compression.ZipFile]::OpenRead($script:Nupkg.FullName)
        try {
            foreach ($lib in 'runtimes/win-x64/native/remoteitp2p.dll', 'runtimes/linux-x64/native/libremoteitp2p.so') {
                $entry = $zip.GetEntry($lib)
                $ms = [System.IO.MemoryStream]::new()
                $s = $entry.Open(); try { $s.CopyTo($ms) } finally { $s.Dispose() }
                foreach ($h in $hooks) { Test-Contains $ms.ToArray() $h | Should -BeFalse -Because "$lib must not have $h" }
            }
        } finally { $zip.Dispose() }
        # The programs build.ps1 ships beside the package (out/bin/<runtime>).
        foreach ($exe in Get-ChildItem (Join-Path $PSScriptRoot '../out/bin') -Recurse -File -Filter 'connectd*') {
            foreach ($h in $hooks[1..3]) { Test-Contains ([System.IO.File]::ReadAllBytes($exe.FullName)) $h | Should -BeFalse -Because "$($exe.FullName) must not read $h" }
        }
    }

    It 'installs from a folder repository into an empty module path, imports by name and connects' {
        $freshHome = Join-Path $script:Lab.Dir 'fresh-home'
        New-Item -ItemType Directory -Path $freshHome | Out-Null
        $repoDir = $script:Nupkg.DirectoryName
        $install = Invoke-FreshPwsh $freshHome @"
`$ErrorActionPreference = 'Stop'
if (Get-Module -ListAvailable RemoteItP2P) { throw 'RemoteItP2P is already on the module path before installing' }
Register-PSResourceRepository -Name p2plocal -Uri '$repoDir' -Trusted
Install-PSResource -Name RemoteItP2P -Repository p2plocal -Scope CurrentUser
(Get-Module -ListAvailable RemoteItP2P).ModuleBase
"@
        $installedAt = @($install)[-1]
        $installedAt | Should -BeLike "$freshHome*"

        $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module RemoteItP2P
`$m = Get-Module RemoteItP2P
`$cred = [pscredential]::new('$($script:Lab.User)', (ConvertTo-SecureString 'correct horse battery staple' -AsPlainText -Force))
`$c = New-P2PConnection '$($script:Lab.DeviceId)' `$cred -Server '$($script:Lab.Server)' -ServerKey '$($script:Lab.ServerKey)' -DeviceKey '$($script:Lab.DeviceFingerprint)'
`$page = Invoke-WebRequest -Uri "http://`$(`$c.LocalEndpoint)/" -UseBasicParsing -TimeoutSec 20
`$c | Stop-P2PConnection
"base=`$(`$m.ModuleBase)"
"state=`$(`$c.State)"
"status=`$(`$page.StatusCode)"
"demo=`$(`$page.Content -match 'RemoteItP2P demo page')"
"@
        $lines = Invoke-FreshPwsh $freshHome $script
        $lines | Should -Contain "base=$installedAt"
        $lines | Should -Contain 'state=Connected'
        $lines | Should -Contain 'status=200'
        $lines | Should -Contain 'demo=True'
    }
}
