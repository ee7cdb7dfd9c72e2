# README's first command, `pwsh ./build.ps1 -Task Demo`, run as written from the repository root: the demo
# starts its own server, target and web page, connects, fetches the page through the tunnel and stops.
# (build.ps1 -Task Test has built the module already, so the demo builds nothing.) Not under wine: there
# the module under test is the Windows one, and build.ps1 drives the Linux build of this machine.

Describe 'README''s demo command' {
    It 'pwsh ./build.ps1 -Task Demo fetches the page through a connection and closes it' -Skip:($env:P2P_UNDER_WINE -eq '1') {
        Push-Location (Join-Path $PSScriptRoot '..')
        try {
            $out = & pwsh ./build.ps1 -Task Demo 2>&1 | Out-String
            $code = $LASTEXITCODE
        } finally { Pop-Location }
        $code | Should -Be 0 -Because $out
        $out | Should -Match 'HTTP 200: \S'                 # the page, through the tunnel
        $out | Should -Match 'stopped; 127\.0\.0\.1:\d+ is closed\.'
        $out | Should -Match 'Demo finished'
    }
}
