# New-P2PConnection as a PowerShell user types it: a pipeline of files with a failing one in the
# middle, a file by position, -Debug in a script, error record fields, names from parallel runspaces,
# default names, delay-bind -Name, and what the pipeline refuses. Against a real lab (Support/P2PLab.psm1).

BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/Common.ps1')
    $script:NewId = 'RemoteItP2P.Commands.NewP2PConnectionCommand'

    # A device the server knows but whose target is not running: connecting to it is P2PDeviceOffline.
    $script:OfflineId = '80:00:00:00:01:00:0B:01'
    'offline-device-secret-0123' | & (Get-P2PBinary 'p2p-server') device add $OfflineId --owner $Lab.User --name offline `
        --app-type 7 --data-dir (Join-Path $Lab.Dir 'server') | Out-Null
    if ($LASTEXITCODE -ne 0) { throw 'p2p-server device add failed' }

    # A provisioning file in the lab's folder for $DeviceId.
    function script:New-TunnelFile([string] $Path, [string] $DeviceId) {
        @(
            "user_id $($Lab.User)"
            "auth_pass $($Lab.Password)"
            "proxy_local_port $(Get-FreeTcpPort)"
            'proxy_bind_address 127.0.0.1'
            "remote_address $DeviceId"
            "server $($Lab.Server)"
            "server_key $($Lab.ServerKey)"
        ) | Set-Content -LiteralPath $Path -Encoding ascii
        $Path
    }
}

AfterAll { Stop-P2PTestLab }

Describe 'New-P2PConnection: one failed item does not end the pipeline (item 1)' {
    BeforeAll {
        $script:Tunnels = Join-Path $Lab.Dir 'tunnels'
        New-Item -ItemType Directory -Path $Tunnels | Out-Null
        New-TunnelFile (Join-Path $Tunnels 'web1.txt') $Lab.DeviceId | Out-Null
        New-TunnelFile (Join-Path $Tunnels 'web2.txt') $OfflineId | Out-Null
        New-TunnelFile (Join-Path $Tunnels 'web3.txt') $Lab.DeviceId | Out-Null
    }
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'Get-ChildItem ./tunnels/web*.txt | New-P2PConnection: the offline device''s file is an error, the files after it still connect' {
        Push-Location $Lab.Dir
        try {
            $c = Get-ChildItem ./tunnels/web*.txt | New-P2PConnection -ErrorVariable failed -ErrorAction SilentlyContinue -TimeoutSec 15
            $ok = $?
        } finally { Pop-Location }
        $ok | Should -BeFalse
        @($c).Count | Should -Be 2
        $c.State | Should -Be @('Connected', 'Connected')
        @($failed).Count | Should -Be 1
        $failed[0].FullyQualifiedErrorId | Should -Be "P2PDeviceOffline,$NewId"
        $failed[0].TargetObject | Should -Be $OfflineId
        @(Get-P2PConnection).Count | Should -Be 2
    }

    It 'with -ErrorAction Stop the same failure is terminating, as everywhere else' {
        Push-Location $Lab.Dir
        try {
            { Get-ChildItem ./tunnels/web2.txt | New-P2PConnection -ErrorAction Stop -TimeoutSec 15 } | Should -Throw -ErrorId "P2PDeviceOffline,$NewId"
        } finally { Pop-Location }
        Get-P2PConnection | Should -BeNullOrEmpty
    }
}

Describe 'New-P2PConnection ./file.txt by position (item 4)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'a path as the first positional argument is the provisioning file' {
        New-TunnelFile (Join-Path $Lab.Dir 'file.txt') $Lab.DeviceId | Out-Null
        Push-Location $Lab.Dir
        try { $c = New-P2PConnection ./file.txt } finally { Pop-Location }
        $c.State | Should -Be 'Connected'
        $c.DeviceId | Should -Be $Lab.DeviceId
    }

    It 'a path with -Credential, or a missing file, is a clear error; a malformed UID is still refused at binding' {
        Push-Location $Lab.Dir
        try {
            New-P2PConnection ./file.txt $Lab.Credential -ErrorVariable e -ErrorAction SilentlyContinue
            $e[0].Exception.Message | Should -Match '-ProvisioningFile'
            New-P2PConnection ./missing.txt -ErrorVariable e -ErrorAction SilentlyContinue
            $e[0].FullyQualifiedErrorId | Should -Be "P2PProvisioningFileNotFound,$NewId"
        } finally { Pop-Location }
        { New-P2PConnection 80:00:00 $Lab.Credential @Common } | Should -Throw -ErrorId 'ParameterArgumentValidationError*'
    }
}

Describe 'New-P2PConnection -Debug (item 5)' {
    It 'in a script, -Debug neither prompts nor throws; debug lines come out; a failure leaves no tunnel open' {
        $script = Join-Path $Lab.Dir 'debug.ps1'
        @'
param($ModulePath, $Server, $ServerKey, $DeviceId, $User, $Password)
Import-Module $ModulePath
$cred = [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
$out = New-P2PConnection $DeviceId $cred -Server $Server -ServerKey $ServerKey -Debug 5>&1
$c = $out | Where-Object { $_ -is [RemoteItP2P.P2PConnection] }
"debug=$(@($out | Where-Object { $_ -is [System.Management.Automation.DebugRecord] }).Count)"
"state=$($c.State)"
$c | Stop-P2PConnection -Debug 5>$null
$bad = [pscredential]::new($User, (ConvertTo-SecureString 'wrong-password-1' -AsPlainText -Force))
New-P2PConnection $DeviceId $bad -Server $Server -ServerKey $ServerKey -Debug -ErrorVariable e -ErrorAction SilentlyContinue 5>$null
"error=$($e[0].FullyQualifiedErrorId)"
"open=$(@(Get-P2PConnection).Count)"
# A UID without -Credential (not mandatory, so that a path can stand alone): no prompt here, a clear error.
New-P2PConnection $DeviceId -Server $Server -ServerKey $ServerKey -ErrorVariable e2 -ErrorAction SilentlyContinue
"nocred=$($e2[0].FullyQualifiedErrorId) $($e2[0].Exception.Message)"
'@ | Set-Content -LiteralPath $script -Encoding utf8
        $out = & (Get-PwshPath) -NoProfile -NonInteractive -File $script -ModulePath $ModulePath -Server $Lab.Server `
            -ServerKey $Lab.ServerKey -DeviceId $Lab.DeviceId -User $Lab.User -Password $Lab.Password 2>&1
        $text = $out | Out-String
        $LASTEXITCODE | Should -Be 0 -Because $text
        $text | Should -Not -Match 'NullReference|Confirm|Continue with this operation'
        $text | Should -Match 'state=Connected'
        [int]($text -replace '(?s).*debug=(\d+).*', '$1') | Should -BeGreaterThan 0
        $text | Should -Match 'error=P2PAuthenticationFailed'
        $text | Should -Match 'open=0'
        $text | Should -Match 'nocred=P2PInvalidConfiguration,\S+ -Credential is required'
    }
}

Describe 'New-P2PConnection error records (item 7)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'a wrong password: TargetObject is the device id, RecommendedAction says what to do' {
        $bad = [pscredential]::new($Lab.User, (ConvertTo-SecureString 'not-the-password-42' -AsPlainText -Force))
        New-P2PConnection $Lab.DeviceId $bad @Common -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].FullyQualifiedErrorId | Should -Be "P2PAuthenticationFailed,$NewId"
        $e[0].TargetObject | Should -Be $Lab.DeviceId
        $e[0].ErrorDetails.RecommendedAction | Should -Match 'password'
        $e[0].CategoryInfo.TargetName | Should -Be $Lab.DeviceId
    }

    It 'an offline device and an unknown one name the device and recommend something' {
        New-P2PConnection $OfflineId $Lab.Credential @Common -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].TargetObject | Should -Be $OfflineId
        $e[0].ErrorDetails.RecommendedAction | Should -Not -BeNullOrEmpty
        New-P2PConnection 80:00:00:00:01:00:FF:FE $Lab.Credential @Common -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].FullyQualifiedErrorId | Should -Be "P2PDeviceNotFound,$NewId"
        $e[0].TargetObject | Should -Be '80:00:00:00:01:00:FF:FE'
        $e[0].ErrorDetails.RecommendedAction | Should -Not -BeNullOrEmpty
    }

    It 'not-found errors are ItemNotFoundException, with the Id or Name as target' {
        Get-P2PConnection -Name nosuch -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].Exception | Should -BeOfType [System.Management.Automation.ItemNotFoundException]
        $e[0].FullyQualifiedErrorId | Should -BeLike 'P2PConnectionNotFound,*'
        $e[0].TargetObject | Should -Be 'nosuch'
        $e[0].ErrorDetails.RecommendedAction | Should -Match 'Get-P2PConnection'
        Stop-P2PConnection -Id 987654 -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].Exception | Should -BeOfType [System.Management.Automation.ItemNotFoundException]
    }

    It 'with no server set, the message names -Server and -ServerKey, not connectd''s -y/--server' {
        $saved = $env:P2P_SERVER, $env:P2P_SERVER_KEY
        Remove-Item Env:P2P_SERVER, Env:P2P_SERVER_KEY -ErrorAction SilentlyContinue
        try {
            New-P2PConnection $Lab.DeviceId $Lab.Credential -ErrorVariable e -ErrorAction SilentlyContinue
            $e[0].Exception.Message | Should -Match '-Server host:port'
            $e[0].Exception.Message | Should -Not -Match '(^|\s)-y\b|--server'
            $e[0].ErrorDetails.RecommendedAction | Should -Match '-ServerKey'
        } finally {
            if ($saved[0]) { $env:P2P_SERVER = $saved[0] }
            if ($saved[1]) { $env:P2P_SERVER_KEY = $saved[1] }
        }
    }
}

Describe 'Connection names (item 8)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It '-Name same from ForEach-Object -Parallel: exactly one connection gets it, the others P2PNameInUse' {
        $lab = $Lab; $modulePath = $ModulePath
        $results = 1..4 | ForEach-Object -ThrottleLimit 4 -Parallel {
            Import-Module $using:modulePath
            $l = $using:lab
            try { (New-P2PConnection $l.DeviceId $l.Credential -Server $l.Server -ServerKey $l.ServerKey -Name same -ErrorAction Stop).Name }
            catch { $_.FullyQualifiedErrorId }
        }
        @($results | Where-Object { $_ -eq 'same' }).Count | Should -Be 1
        @($results | Where-Object { $_ -like 'P2PNameInUse,*' }).Count | Should -Be 3
        @(Get-P2PConnection -Name same).Count | Should -Be 1
    }

    It 'two connections to one device without -Name get distinct default names' {
        $a = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        $b = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        $a.Name | Should -Be $Lab.DeviceId
        $b.Name | Should -Be "$($Lab.DeviceId)#2"
        Get-P2PConnection -Name $b.Name | Should -Not -BeNullOrEmpty
    }

    It '-Name { $_.BaseName } names each connection after its file (a delay-bind script block)' {
        $dir = Join-Path $Lab.Dir 'named'
        New-Item -ItemType Directory -Path $dir | Out-Null
        New-TunnelFile (Join-Path $dir 'pi-ssh.txt') $Lab.DeviceId | Out-Null
        New-TunnelFile (Join-Path $dir 'pi-web.txt') $Lab.DeviceId | Out-Null
        $c = Get-ChildItem $dir -Filter *.txt | New-P2PConnection -Name { $_.BaseName }
        ($c.Name | Sort-Object) | Should -Be @('pi-ssh', 'pi-web')
    }
}

Describe 'What the pipeline and completion offer (item 12)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'Get-P2PConnection | New-P2PConnection says connections are not provisioning files (not "Cannot find drive")' {
        New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -BindAddress 0.0.0.0 -WarningAction SilentlyContinue | Out-Null
        Get-P2PConnection | New-P2PConnection -ErrorVariable e -ErrorAction SilentlyContinue
        $e | Should -Not -BeNullOrEmpty
        ($e.Exception.Message -join ' ') | Should -Not -Match 'Cannot find drive'
        ($e.Exception.Message -join ' ') | Should -Match 'not P2P connections'
        @(Get-P2PConnection).Count | Should -Be 1
    }

    It '-DeviceId completion offers the UIDs of open connections, not file names' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        Push-Location $Lab.Dir
        try {
            $line = 'New-P2PConnection -DeviceId '
            $r = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        } finally { Pop-Location }
        $r.CompletionMatches.CompletionText | Should -Contain $Lab.DeviceId
        $r.CompletionMatches.CompletionText | Where-Object { $_ -match 'target\.conf|\.txt' } | Should -BeNullOrEmpty
    }
}

Describe 'New-P2PConnection and Ctrl+C' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'Ctrl+C ends the wait for Connected within a second and closes the tunnel' {
        $silent = Start-SilentServer
        try {
            $before = @(Get-P2PConnection).Count
            $took = Measure-CtrlC 'New-P2PConnection' @{
                DeviceId = $Lab.DeviceId; Credential = $Lab.Credential; TimeoutSec = 60
                Server = "127.0.0.1:$($silent.LocalEndpoint.Port)"; ServerKey = $Lab.ServerKey
            }
            $took.TotalSeconds | Should -BeLessThan 1
            # A tunnel not handed to the caller does not stay open.
            @(Get-P2PConnection).Count | Should -Be $before
        } finally { $silent.Stop() }
    }
}

Describe 'New-P2PConnection and device keys: P2PDeviceKeyMismatch, P2PDeviceKeyUnknown, -AcceptDeviceKey, -DeviceKey' {
    BeforeAll {
        # A device of its own, its keys and the initiator's pins in the lab (not this user's configuration).
        $script:KeyDevice = '80:00:00:00:01:00:0B:02'
        $script:KeySecret = 'key-device-secret-0123'
        Invoke-P2PLabAdmin $Lab @('device', 'add', $KeyDevice, '--owner', $Lab.User, '--name', 'keys', '--app-type', '7') $KeySecret | Out-Null
        $script:KeyDir = Join-Path $Lab.Dir 'device-keys'
        New-Item -ItemType Directory -Path $KeyDir | Out-Null
        # An initiator file for the device whose key (and so known_devices) is in $Dir.
        function script:New-KeyTunnelFile([string] $Dir) {
            New-Item -ItemType Directory -Path $Dir | Out-Null
            $path = New-TunnelFile (Join-Path $Dir 'tunnel.txt') $KeyDevice
            Add-Content -LiteralPath $path -Value "key_file $(Join-Path $Dir 'initiator.key')" -Encoding ascii
            $path
        }
    }
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'a pinned device back with another key is P2PDeviceKeyMismatch with both fingerprints; -AcceptDeviceKey takes the new one' {
        $script:OldKey = Start-P2PLabKeyTarget $Lab $KeyDevice $KeySecret (Join-Path $KeyDir 'old.key') 'key-target-old'
        $file = New-KeyTunnelFile (Join-Path $KeyDir 'pinned')
        # Its fingerprint read on the device, given once: pinned for the connections after this one.
        $c = New-P2PConnection $file -DeviceKey $OldKey.Fingerprint -TimeoutSec 20
        $c.PeerFingerprint | Should -Be $OldKey.Fingerprint
        $c | Stop-P2PConnection

        # The device is re-installed with a new key; the server's administrator allows the rotation.
        $OldKey.Process.Kill()
        $OldKey.Process.WaitForExit(5000) | Out-Null
        Invoke-P2PLabAdmin $Lab @('device', 'rotate-key', $KeyDevice) | Out-Null
        $script:NewKey = Start-P2PLabKeyTarget $Lab $KeyDevice $KeySecret (Join-Path $KeyDir 'new.key') 'key-target-new'
        $NewKey.Fingerprint | Should -Not -Be $OldKey.Fingerprint

        New-P2PConnection $file -TimeoutSec 20 -ErrorVariable e -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -Be "P2PDeviceKeyMismatch,$NewId"
        $e[0].CategoryInfo.Category | Should -Be 'SecurityError'
        $e[0].TargetObject | Should -Be $KeyDevice
        $e[0].Exception.ExpectedFingerprint | Should -Be $OldKey.Fingerprint
        $e[0].Exception.PresentedFingerprint | Should -Be $NewKey.Fingerprint
        $e[0].Exception.Message | Should -BeLike "*$($OldKey.Fingerprint)*$($NewKey.Fingerprint)*"
        $e[0].ErrorDetails.RecommendedAction | Should -BeLike '*-AcceptDeviceKey*'
        Get-P2PConnection | Should -BeNullOrEmpty

        $c = New-P2PConnection $file -AcceptDeviceKey $NewKey.Fingerprint -TimeoutSec 20
        $c.PeerFingerprint | Should -Be $NewKey.Fingerprint
        $c | Stop-P2PConnection
        # Pinned now: the next connection needs no switch.
        (New-P2PConnection $file -TimeoutSec 20).PeerFingerprint | Should -Be $NewKey.Fingerprint
    }

    It '-DeviceKey pins the device before the first connection: another key is refused, the device''s connects' {
        $file = New-KeyTunnelFile (Join-Path $KeyDir 'seeded')
        New-P2PConnection $file -DeviceKey $OldKey.Fingerprint -TimeoutSec 20 -ErrorVariable e -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -Be "P2PDeviceKeyMismatch,$NewId"
        $e[0].Exception.ExpectedFingerprint | Should -Be $OldKey.Fingerprint
        $e[0].Exception.PresentedFingerprint | Should -Be $NewKey.Fingerprint
        $c = New-P2PConnection -DeviceId $KeyDevice -Credential $Lab.Credential @Common -DeviceKey $NewKey.Fingerprint -TimeoutSec 20
        $c.PeerFingerprint | Should -Be $NewKey.Fingerprint
        (Get-P2PConnection -Id $c.Id).PeerFingerprint | Should -Be $NewKey.Fingerprint
    }

    It 'a device neither given nor pinned is P2PDeviceKeyUnknown naming its fingerprint; -DeviceKey connects and pins it' {
        $unknownId = '80:00:00:00:01:00:0B:03'
        Invoke-P2PLabAdmin $Lab @('device', 'add', $unknownId, '--owner', $Lab.User, '--name', 'unknown', '--app-type', '7') $KeySecret | Out-Null
        $device = Start-P2PLabKeyTarget $Lab $unknownId $KeySecret (Join-Path $KeyDir 'unknown.key') 'key-target-unknown'
        # Pins of its own (key_file in a fresh folder): nothing is known of the device there.
        $dir = Join-Path $KeyDir 'unknown'
        New-Item -ItemType Directory -Path $dir | Out-Null
        $file = New-TunnelFile (Join-Path $dir 'tunnel.txt') $unknownId
        Add-Content -LiteralPath $file -Value "key_file $(Join-Path $dir 'initiator.key')" -Encoding ascii

        New-P2PConnection $file -TimeoutSec 20 -ErrorVariable e -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -Be "P2PDeviceKeyUnknown,$NewId"
        $e[0].CategoryInfo.Category | Should -Be 'SecurityError'
        $e[0].TargetObject | Should -Be $unknownId
        $e[0].Exception.PresentedFingerprint | Should -Be $device.Fingerprint
        $e[0].Exception.Message | Should -BeLike "*$unknownId*$($device.Fingerprint)*"
        $e[0].ErrorDetails.RecommendedAction | Should -BeLike '*-DeviceKey*-TrustFirstUse*'
        Get-P2PConnection | Should -BeNullOrEmpty
        Test-Path (Join-Path $dir 'known_devices') | Should -BeFalse

        $c = New-P2PConnection $file -DeviceKey $device.Fingerprint -TimeoutSec 20
        $c.PeerFingerprint | Should -Be $device.Fingerprint
        $c | Stop-P2PConnection
        # Pinned by that connection: the next one needs no -DeviceKey.
        (New-P2PConnection $file -TimeoutSec 20).PeerFingerprint | Should -Be $device.Fingerprint
    }

    It '-TrustFirstUse takes the server''s word for a device neither given nor pinned, and pins it' {
        $dir = Join-Path $KeyDir 'tofu'
        New-Item -ItemType Directory -Path $dir | Out-Null
        $file = New-TunnelFile (Join-Path $dir 'tunnel.txt') $KeyDevice
        Add-Content -LiteralPath $file -Value "key_file $(Join-Path $dir 'initiator.key')" -Encoding ascii
        $c = New-P2PConnection $file -TrustFirstUse -TimeoutSec 20
        $c.PeerFingerprint | Should -Be $NewKey.Fingerprint
        $c | Stop-P2PConnection
        Get-Content -LiteralPath (Join-Path $dir 'known_devices') -Raw | Should -BeLike "*$KeyDevice* tofu*"
    }
}
