# Test-P2PNetwork as a PowerShell user types it: against a server whose UDP probe ports
# are not the default 5959-5961 (the lab's are random), with no P2P_PROBE_ADDRn set. Against a real lab
# (Support/P2PLab.psm1).

BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/Common.ps1')
    $script:SavedEnv = @{}
    foreach ($name in 'P2P_SERVER', 'P2P_SERVER_KEY', 'P2P_PROBE_ADDR1', 'P2P_PROBE_ADDR2', 'P2P_PROBE_ADDR3') {
        $SavedEnv[$name] = [Environment]::GetEnvironmentVariable($name)
        [Environment]::SetEnvironmentVariable($name, $null)
    }
}

AfterAll {
    foreach ($name in $SavedEnv.Keys) { [Environment]::SetEnvironmentVariable($name, $SavedEnv[$name]) }
    Stop-P2PTestLab
}

Describe 'Test-P2PNetwork against a server on other ports (item 3)' {
    AfterEach { $env:P2P_SERVER_KEY = $null }

    It 'Test-P2PNetwork -Server -ServerKey probes the ports the server names, and passes' {
        $Lab.UdpAddresses | Should -Not -Contain '127.0.0.1:5959'
        $r = Test-P2PNetwork -Server $Lab.Server -ServerKey $Lab.ServerKey -TimeoutSec 3
        @($r.Udp.Probes.Target) | Should -Be $Lab.UdpAddresses
        $r.Udp.Ok | Should -BeTrue
        $r.Control.Ok | Should -BeTrue
        $r.Control.ProbeAddrsFrom | Should -Be 'server'
        $r.Compatible | Should -BeTrue -Because ($r.Problems -join '; ')
        $r.Report | Should -Match ([regex]::Escape("probe ports $($Lab.UdpAddresses -join ',')"))
    }

    It 'takes the key from $env:P2P_SERVER_KEY' {
        $env:P2P_SERVER_KEY = $Lab.ServerKey
        $r = Test-P2PNetwork -Server $Lab.Server -TimeoutSec 3
        @($r.Udp.Probes.Target) | Should -Be $Lab.UdpAddresses
        $r.Compatible | Should -BeTrue -Because ($r.Problems -join '; ')
    }

    It 'with another server''s key it fails and names the key' {
        $other = [Convert]::ToBase64String([byte[]](1..32))
        $r = Test-P2PNetwork -Server $Lab.Server -ServerKey $other -TimeoutSec 3
        $r.Compatible | Should -BeFalse
        $r.Control.Ok | Should -BeFalse
        ($r.Problems -join "`n") | Should -Match 'key'
    }

    It 'reports this host''s global IPv6 addresses, as the report''s IPv6 line does' {
        $r = Test-P2PNetwork -Server $Lab.Server -ServerKey $Lab.ServerKey -TimeoutSec 3
        $r.PSObject.Properties.Name | Should -Contain 'Ipv6'
        $got = @($r.Ipv6.GlobalAddresses)
        if ($IsLinux) {
            # What the system has: global unicast (2000::/3) addresses; a connection offers at most 3.
            $system = @(ip -6 -o addr show scope global 2>$null |
                ForEach-Object { ($_ -split '\s+')[3] -replace '/.*$' } | Where-Object { $_ -match '^[23]' })
            $got.Count | Should -Be ([Math]::Min($system.Count, 3))
            foreach ($a in $got) { $system | Should -Contain $a }
        }
        if ($got.Count -eq 0) {
            $r.Report | Should -Match 'IPv6: no global address'
        } else {
            foreach ($a in $got) { $r.Report | Should -Match ([regex]::Escape($a)) }
        }
    }

    It 'without a key it says that it probed the default ports, and why' {
        $r = Test-P2PNetwork -Server $Lab.Server -TimeoutSec 1
        $r.Control.Checked | Should -BeFalse
        $r.Control.ProbeAddrsFrom | Should -Be 'defaults'
        $r.Control.Error | Should -Match 'ServerKey'
        $r.Report | Should -Match 'SKIPPED'
    }
}

Describe 'Test-P2PNetwork and Ctrl+C' {
    It 'Ctrl+C abandons a self-test that waits for a silent server within a second' {
        $silent = Start-SilentServer
        try {
            $took = Measure-CtrlC 'Test-P2PNetwork' @{
                Server = "127.0.0.1:$($silent.LocalEndpoint.Port)"; ServerKey = $Lab.ServerKey; TimeoutSec = 60
            }
            $took.TotalSeconds | Should -BeLessThan 1
        } finally { $silent.Stop() }
    }
}
