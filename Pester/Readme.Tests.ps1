# README.md's PowerShell examples (its ```powershell blocks), run as written against a real lab. The blocks are read from README.md itself, so an
# edit there is tested as it stands. The only changes are the README's own placeholders:
#
#   server.example.com:5980               -> the lab's server (host:port)
#   '3q2+7w...='                          -> the lab's server key
#   SHA256:q0ZlUm...                      -> the fingerprint of the lab's device (connectd --fingerprint -f)
#   the device UIDs (80:00:00:00:01:00:0A:C2, 80:00:00:00:00:00:00:F1) -> the lab's device
#   Get-Credential yourname@example.com   -> a Get-Credential function defined here that returns the lab's
#                                            credential (the README's call itself is unchanged)
#   C:\Packages                           -> the package folder (out/packages, or $env:REMOTEITP2P_PACKAGE_DIR)
#   ssh -p PORT pi@127.0.0.1              -> an ssh function defined here that proves PORT reaches the lab's
#                                            service (its web page) through 127.0.0.1 (the call is unchanged)
#
# and, outside the text, the environment the blocks assume: the current directory is the repository (step
# 5's Import-Module ./out/RemoteItP2P), $env:USERPROFILE is a folder whose Documents\SSH-Pi.txt is a
# provisioning file for the lab (Option 3), and the install block runs in a fresh pwsh whose HOME is empty
# (as Package.Tests.ps1 does). The install test is skipped when there is no package (build.ps1 -Task
# Package, or -Task Test without -SkipWindows, makes it).

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'Support/P2PLab.psm1') -Force
    Import-Module (Join-Path $PSScriptRoot 'Support/FreshPwsh.psm1') -Force
    $script:Root = (Resolve-Path (Join-Path $PSScriptRoot '..')).ProviderPath
    $script:Lab = Start-P2PLab
    $script:PackageDir = if ($env:REMOTEITP2P_PACKAGE_DIR) { $env:REMOTEITP2P_PACKAGE_DIR } else { Join-Path $Root 'out/packages' }

    # The ```powershell blocks of README.md, in order, with the placeholders above replaced.
    function script:Get-ReadmeBlock {
        $text = Get-Content -LiteralPath (Join-Path $Root 'README.md') -Raw
        $blocks = [regex]::Matches($text, '(?ms)^```powershell\r?\n(.*?)^```') | ForEach-Object { $_.Groups[1].Value }
        foreach ($b in $blocks) {
            $b.Replace('server.example.com:5980', $Lab.Server).
                Replace('3q2+7w...=', $Lab.ServerKey).
                Replace('SHA256:q0ZlUm...', $Lab.DeviceFingerprint).
                Replace('80:00:00:00:01:00:0A:C2', $Lab.DeviceId).
                Replace('80:00:00:00:00:00:00:F1', $Lab.DeviceId).
                Replace('C:\Packages', $PackageDir)
        }
    }

    # The two stand-ins. Both are plain functions, so the README's own calls reach them unchanged.
    $script:Prelude = @"
`$SshPorts = [System.Collections.Generic.List[int]]::new()
function Get-Credential {
    # Stands in for the prompt: the lab's credential, whatever user name the README passes.
    [pscredential]::new('$($Lab.User)', (ConvertTo-SecureString '$($Lab.Password)' -AsPlainText -Force))
}
function ssh {
    # Stands in for ``ssh -p PORT pi@127.0.0.1``: proves PORT on that address reaches the lab's service.
    `$port = [int]`$args[[array]::IndexOf(`$args, '-p') + 1]
    `$address = (`$args[-1] -split '@')[-1]
    `$page = Invoke-WebRequest -Uri "http://`${address}:`$port/" -UseBasicParsing -TimeoutSec 20
    if (`$page.Content -notmatch 'RemoteItP2P demo page') { throw "`${address}:`$port did not reach the lab's service" }
    `$SshPorts.Add(`$port)
}
"@

    # Option 3's "$env:USERPROFILE\Documents\SSH-Pi.txt": a provisioning file for the lab in such a folder.
    $script:Profile = Join-Path $Lab.Dir 'profile'
    New-Item -ItemType Directory -Path (Join-Path $Profile 'Documents') | Out-Null
    $sshPi = New-P2PLabProvisioningFile -Lab $Lab -Name 'SSH-Pi.txt'
    Copy-Item -LiteralPath $sshPi -Destination (Join-Path $Profile 'Documents/SSH-Pi.txt')

    $script:Saved = @{ P2P_SERVER = $env:P2P_SERVER; P2P_SERVER_KEY = $env:P2P_SERVER_KEY; USERPROFILE = $env:USERPROFILE }
    function script:Restore-Environment {
        foreach ($name in $Saved.Keys) {
            if ($null -eq $Saved[$name]) { Remove-Item "Env:$name" -ErrorAction SilentlyContinue } else { Set-Item "Env:$name" $Saved[$name] }
        }
    }
    # Runs README text in this scope (so the stand-ins above are found), stopping at the first error.
    function script:Invoke-ReadmeBlock([string] $Block) {
        $ErrorActionPreference = 'Stop'
        . ([scriptblock]::Create($Prelude))
        $out = . ([scriptblock]::Create($Block))
        [pscustomobject]@{ Output = @($out); SshPorts = @($SshPorts) }
    }
    function script:Test-PortFree([int] $Port) { -not (Test-TcpPortOpen $Port) }
}

AfterAll {
    if (Get-Module RemoteItP2P) { Get-P2PConnection | Stop-P2PConnection -ErrorAction SilentlyContinue }
    Restore-Environment
    Stop-P2PLab $script:Lab
}

Describe 'README.md''s PowerShell blocks, as written' {
    AfterEach {
        if (Get-Module RemoteItP2P) { Get-P2PConnection | Stop-P2PConnection -ErrorAction SilentlyContinue }
        Restore-Environment
    }

    It 'has the blocks this test knows: step 5, the Windows install, the seed''s three options' {
        $blocks = @(Get-ReadmeBlock)
        $blocks.Count | Should -Be 3
        $blocks[0] | Should -Match 'Import-Module ./out/RemoteItP2P'
        $blocks[1] | Should -Match 'Install-PSResource'
        $blocks[2] | Should -Match 'Option 3'
    }

    It 'step 5, "Connect with PowerShell", runs as written' {
        if (-not (Test-PortFree 33000)) { Set-ItResult -Skipped -Because 'port 33000, which the README uses, is taken on this machine'; return }
        $block = @(Get-ReadmeBlock)[0]
        Push-Location $Root
        try { $r = Invoke-ReadmeBlock $block } finally { Pop-Location }
        $r.SshPorts | Should -Be @(33000)
        # Get-P2PConnection's output: the connection, Connected, as the comment says.
        $listed = $r.Output | Where-Object { $_ -is [RemoteItP2P.P2PConnection] }
        @($listed).Count | Should -Be 1
        $listed.State | Should -Be 'Connected'
        $listed.LocalPort | Should -Be 33000
        $listed.Path | Should -BeIn @('Direct', 'Relayed')
        Get-P2PConnection | Should -BeNullOrEmpty   # $c | Stop-P2PConnection closed it
        Test-TcpPortOpen 33000 | Should -BeFalse
    }

    It 'Windows: "The seed''s three options, as cmdlets" runs as written' {
        if (-not (Test-PortFree 33000)) { Set-ItResult -Skipped -Because 'port 33000, which the README uses, is taken on this machine'; return }
        $block = @(Get-ReadmeBlock)[2]
        $env:USERPROFILE = $Profile
        if (-not (Get-Module RemoteItP2P)) { Import-Module (Join-Path $Root 'out/RemoteItP2P') }
        $r = Invoke-ReadmeBlock $block
        $r.SshPorts | Should -Be @(33000)                       # Option 1
        $listed = $r.Output | Where-Object { $_ -is [RemoteItP2P.P2PConnection] }
        @($listed).Count | Should -Be 1                          # Option 2's Get-P2PConnection -Name pi-ssh
        $listed.Name | Should -Be 'pi-ssh'
        $listed.State | Should -Be 'Connected'
        Get-P2PConnection | Should -BeNullOrEmpty               # every option stopped its connection
    }

    # Not under wine (tools/windows/pester-under-wine.sh sets P2P_UNDER_WINE): a Windows pwsh's user module
    # path is Documents\PowerShell\Modules, which HOME and USERPROFILE do not move, and wine maps Documents
    # to the Linux $HOME, so the install would land in ~/PowerShell/Modules of the build machine. (And wine
    # 8.0 matches no file with -Filter 'RemoteItP2P.*.nupkg': it lacks the DOS_DOT wildcard .NET makes of ".*".)
    It 'Windows: "Install the module" from the package folder, then the three options, in a fresh pwsh' -Skip:($env:P2P_UNDER_WINE -eq '1') {
        $nupkg = Get-ChildItem -LiteralPath $PackageDir -Filter 'RemoteItP2P.*.nupkg' -ErrorAction SilentlyContinue | Select-Object -First 1
        if (-not $nupkg) { Set-ItResult -Skipped -Because "there is no package in $PackageDir (build.ps1 -Task Package makes it)"; return }
        if (-not (Test-PortFree 33000)) { Set-ItResult -Skipped -Because 'port 33000, which the README uses, is taken on this machine'; return }
        $blocks = @(Get-ReadmeBlock)
        $freshHome = Join-Path $Lab.Dir 'readme-home'
        New-Item -ItemType Directory -Path $freshHome | Out-Null
        $script = Join-Path $Lab.Dir 'readme-windows.ps1'
        @(
            '$ErrorActionPreference = ''Stop'''
            $Prelude
            'if (Get-Module -ListAvailable RemoteItP2P) { throw ''RemoteItP2P is on the module path before installing'' }'
            $blocks[1]
            '"installed=$((Get-Module RemoteItP2P).ModuleBase)"'
            $blocks[2]
            '"ssh=$($SshPorts -join '','')"'
            '"open=$(@(Get-P2PConnection).Count)"'
        ) -join "`n" | Set-Content -LiteralPath $script -Encoding utf8

        $r = Invoke-PwshInFreshHome -HomeDir $freshHome -UserProfile $Profile -Arguments '-File', $script
        $out = $r.Out
        $r.ExitCode | Should -Be 0 -Because $r.All
        $out | Should -Match "installed=$([regex]::Escape($freshHome))"
        $out | Should -Match 'ssh=33000'
        $out | Should -Match 'open=0'
    }
}
