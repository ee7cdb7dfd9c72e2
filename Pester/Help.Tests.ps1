# The cmdlets' help as a PowerShell user reads it: -WhatIf/-Confirm in Stop's syntax,
# the real default values, and Example 1's connectd line. No lab needed.

BeforeAll {
    $script:ModulePath = if ($env:REMOTEITP2P_MODULE_PATH) { $env:REMOTEITP2P_MODULE_PATH } else { Join-Path $PSScriptRoot '../out/RemoteItP2P' }
    $script:ModulePath = (Resolve-Path $script:ModulePath).ProviderPath
    Import-Module $script:ModulePath -Force
    function script:DefaultOf([string] $Command, [string] $Parameter) {
        ((Get-Help $Command -Parameter $Parameter).defaultValue | Out-String).Trim()
    }
}

Describe 'Get-Help (item 11)' {
    It 'Get-Help Stop-P2PConnection shows -WhatIf and -Confirm in every syntax line' {
        $syntax = (Get-Help Stop-P2PConnection).syntax | Out-String -Width 300
        $lines = $syntax -split "`r?`n" | Where-Object { $_ -match 'Stop-P2PConnection' }
        $lines.Count | Should -BeGreaterThan 0
        foreach ($line in $lines) {
            $line | Should -Match '\[-WhatIf\]'
            $line | Should -Match '\[-Confirm\]'
        }
        (Get-Help Stop-P2PConnection -Parameter WhatIf).name | Should -Be 'WhatIf'
    }

    It 'shows the real defaults (30, 127.0.0.1, 0, ChaCha20Poly1305), not "None" everywhere' {
        DefaultOf New-P2PConnection TimeoutSec | Should -Be '30'
        DefaultOf New-P2PConnection BindAddress | Should -Be '127.0.0.1'
        DefaultOf New-P2PConnection LocalPort | Should -Match '^0\b'
        DefaultOf New-P2PConnection Encryption | Should -Be 'ChaCha20Poly1305'
        DefaultOf Stop-P2PConnection TimeoutSec | Should -Be '10'
        DefaultOf Wait-P2PConnection State | Should -Be 'Connected'
        DefaultOf Test-P2PNetwork TimeoutSec | Should -Be '5'
        DefaultOf New-P2PConnection NoWait | Should -Be 'False'
    }

    It 'Example 1''s connectd line has the T before the port, as connectd takes it' {
        $text = Get-Help New-P2PConnection -Examples | Out-String -Width 300
        $text | Should -Match 'connectd\.exe -c \S+ \S+ 80:00:00:00:01:00:0A:C2 T33000 '
    }

    It 'Get-Help -Online opens the online help' -Skip {
        # Skipped: the project has no public address yet. New-MamlHelp.ps1 writes the "Online Version:" link
        # from the manifest's PrivateData.PSData.HelpUri (or ProjectUri) once one is set there.
        { Get-Help New-P2PConnection -Online } | Should -Not -Throw
    }
}
