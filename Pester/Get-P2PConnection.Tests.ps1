# Get-P2PConnection and the connection objects as a PowerShell user sees them: the default table
# at 80 columns, ConvertTo-Json, Import-Module -Force and Remove-Module with open connections, and a killed
# device. Against a real lab (Support/P2PLab.psm1).

BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/Common.ps1')
}

AfterAll {
    Get-Module RemoteItP2P | ForEach-Object { Get-P2PConnection | Stop-P2PConnection -ErrorAction SilentlyContinue }
    Import-Module $script:ModulePath -Force
    Stop-P2PLab $script:Lab
}

Describe 'The default table (item 6)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'Format-Table at 80 columns (Out-String -Width 80) shows the whole default name, port, state, path, RTT and bytes' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        $d = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        (Invoke-WebRequest -Uri "http://$($c.LocalEndpoint)/" -UseBasicParsing -TimeoutSec 20).StatusCode | Should -Be 200
        Start-Sleep -Milliseconds 600   # the counters' documented refresh
        $text = Get-P2PConnection | Format-Table | Out-String -Width 80
        $lines = $text -split "`r?`n" | Where-Object { $_.Trim() }
        foreach ($line in $lines) { $line.TrimEnd().Length | Should -BeLessOrEqual 80 -Because "'$line'" }
        $text | Should -Not -Match '…'
        $header = $lines[0]
        foreach ($column in 'Id', 'Name', 'Port', 'State', 'Path', 'RTT ms', 'Sent', 'Rcvd') { $header | Should -Match ([regex]::Escape($column)) }
        $row = $lines | Where-Object { $_ -match "^\s*$($c.Id)\s" }
        $row | Should -Match ([regex]::Escape($Lab.DeviceId))
        $row | Should -Match "\b$($c.LocalPort)\b"
        $row | Should -Match 'Connected'
        $row | Should -Match 'Direct|Relayed'
        $row | Should -Match '\s[1-9]\d*(\.\d)?[KMGT]?\s*$'   # the page came back: bytes received
        ($lines | Where-Object { $_ -match "^\s*$($d.Id)\s" }) | Should -Match ([regex]::Escape("$($Lab.DeviceId)#2"))
    }
}

Describe 'Get-P2PConnection and objects of another process (item 2)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'a deserialized connection (what Receive-Job returns) is matched by InstanceId, and refused when another process made it' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name mine
        $copy = [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($c))
        $copy.PSObject.TypeNames | Should -Contain 'Deserialized.RemoteItP2P.P2PConnection'
        ($copy | Get-P2PConnection).InstanceId | Should -Be $c.InstanceId
        # The same object as another process would send it: same Id and Name, another InstanceId.
        $copy.InstanceId = [guid]::NewGuid()
        $copy | Get-P2PConnection -ErrorVariable e -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'P2PConnectionFromOtherProcess,*'
        Assert-StopRefusesOtherProcess $copy $c
    }
}

Describe 'ConvertTo-Json (item 12)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'writes State, Path and Encryption alike: numbers by default, names with -EnumsAsStrings' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        $j = $c | ConvertTo-Json | ConvertFrom-Json
        foreach ($p in 'State', 'Path', 'Encryption') { $j.$p | Should -BeOfType [long] -Because $p }
        $s = $c | ConvertTo-Json -EnumsAsStrings | ConvertFrom-Json
        $s.State | Should -Be 'Connected'
        $s.Path | Should -BeIn @('Direct', 'Relayed')
        $s.Encryption | Should -Be 'ChaCha20Poly1305'
        # Mode 3 names the AEAD it agreed with the device (both ends here run on this machine).
        $s.Aead | Should -BeIn @('AES-256-GCM', 'ChaCha20-Poly1305')
    }
}

Describe 'Import-Module -Force and Remove-Module with open connections (item 9)' {
    It 'Import-Module -Force keeps the connections (objects stay true); Remove-Module closes them with a warning, and $c.Refresh() says Stopped' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name survives
        Import-Module $ModulePath -Force -WarningVariable w
        $w | Should -BeNullOrEmpty
        $c.Refresh().State | Should -Be 'Connected'
        Test-TcpPortOpen $c.LocalPort | Should -BeTrue
        (Get-P2PConnection -Name survives).Id | Should -Be $c.Id

        Remove-Module RemoteItP2P -WarningVariable w -WarningAction SilentlyContinue
        ($w -join ' ') | Should -Match 'closed 1 open connection'
        ($w -join ' ') | Should -Match 'survives'
        Test-TcpPortOpen $c.LocalPort | Should -BeFalse
        $c.Refresh().State | Should -Be 'Stopped'
        Import-Module $ModulePath -Force
        $c | Get-P2PConnection -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].FullyQualifiedErrorId | Should -BeLike 'P2PConnectionNotFound,*'
    }
}

Describe 'A killed device (item 10)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'shows Degraded (PeerSilentMs) within seconds, then Reconnecting (-AutoReconnect) or Failed; ReconnectAttempts counts the attempts' {
        $auto = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -AutoReconnect -Name auto
        $once = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name once
        $auto.PSObject.Properties.Name | Should -Contain 'ReconnectAttempts'
        $auto.PSObject.Properties.Name | Should -Not -Contain 'Reconnects'
        $auto.ReconnectAttempts | Should -Be 0
        # A live device is heard about every second (keepalives every 2 s each way).
        Start-Sleep -Seconds 1
        foreach ($c in Get-P2PConnection -Id $auto.Id, $once.Id) {
            $c.State | Should -Be 'Connected'
            $c.PeerSilentMs | Should -Not -BeNullOrEmpty
            $c.PeerSilentMs | Should -BeLessThan 3000
        }
        $target = $Lab.Processes | Where-Object Name -eq 'target'
        $killed = [DateTime]::UtcNow
        try { $target.Process.Kill($true) } catch { $target.Process.Kill() }
        # 5 s without a packet from the device: Degraded, long before the driver's peer timeout (about 20 s)
        # ends the session.
        $degraded = @{}
        $deadline = $killed.AddSeconds(40)
        do {
            Start-Sleep -Milliseconds 250
            $a = Get-P2PConnection -Id $auto.Id
            $o = Get-P2PConnection -Id $once.Id
            foreach ($c in $a, $o) {
                if ($c.State -eq 'Degraded' -and -not $degraded.ContainsKey($c.Name)) {
                    $degraded[$c.Name] = [pscustomobject]@{ After = ([DateTime]::UtcNow - $killed).TotalSeconds; PeerSilentMs = $c.PeerSilentMs }
                }
            }
        } until (($a.State -eq 'Reconnecting' -and $o.State -eq 'Failed') -or [DateTime]::UtcNow -gt $deadline)
        foreach ($name in 'auto', 'once') {
            $degraded[$name] | Should -Not -BeNullOrEmpty -Because "$name should be Degraded before its session timed out"
            $degraded[$name].After | Should -BeLessOrEqual 10 -Because "$name should be Degraded within 10 s of the kill"
            $degraded[$name].PeerSilentMs | Should -BeGreaterOrEqual 5000
        }
        $a.State | Should -Be 'Reconnecting'
        $a.ReconnectAttempts | Should -BeGreaterThan 0
        $a.LocalPort | Should -BeGreaterThan 0   # the local port stays open while it reconnects
        $a.PeerSilentMs | Should -BeNullOrEmpty  # no session is up
        $o.State | Should -Be 'Failed'
        $o.LastErrorKind | Should -Not -BeNullOrEmpty
        ([DateTime]::UtcNow - $killed).TotalSeconds | Should -BeGreaterThan 15 -Because 'the session ends at its peer timeout, after Degraded'
    }
}
