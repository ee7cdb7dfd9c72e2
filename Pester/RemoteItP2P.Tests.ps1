# Acceptance tests of the RemoteItP2P module against real processes: a p2p-server, a target
# (connectd -f target.conf) in front of a small web page, and the module loaded from out/RemoteItP2P
# (build.ps1 -Task Build). Run with build.ps1 -Task Test, or Invoke-Pester ./Pester.

BeforeAll {
    $script:ModulePath = if ($env:REMOTEITP2P_MODULE_PATH) { $env:REMOTEITP2P_MODULE_PATH } else { Join-Path $PSScriptRoot '../out/RemoteItP2P' }
    $script:ModulePath = (Resolve-Path $script:ModulePath).ProviderPath
    Import-Module (Join-Path $PSScriptRoot 'Support/P2PLab.psm1') -Force
    Import-Module $script:ModulePath -Force
    $script:Lab = Start-P2PLab -Echo
    $script:Common = @{ Server = $Lab.Server; ServerKey = $Lab.ServerKey }
    $script:NewId = 'RemoteItP2P.Commands.NewP2PConnectionCommand'

    function script:Get-Page([string] $Endpoint) {
        Invoke-WebRequest -Uri "http://$Endpoint/" -UseBasicParsing -TimeoutSec 20
    }
    function script:Get-PortOf($Connection) { [int]($Connection.LocalEndpoint -split ':')[-1] }
}

AfterAll {
    Get-Module RemoteItP2P | ForEach-Object { Get-P2PConnection | Stop-P2PConnection -ErrorAction SilentlyContinue }
    Remove-Module RemoteItP2P -ErrorAction SilentlyContinue
    Stop-P2PLab $script:Lab
}

Describe 'New-P2PConnection' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'connects with a credential, and a web request goes through LocalEndpoint' {
        $c = New-P2PConnection -DeviceId $Lab.DeviceId -Credential $Lab.Credential @Common -Name cred
        $c | Should -BeOfType RemoteItP2P.P2PConnection
        $c.State | Should -Be 'Connected'
        $c.LocalEndpoint | Should -Match '^127\.0\.0\.1:\d+$'
        $c.Encryption | Should -Be 'ChaCha20Poly1305'
        $page = Get-Page $c.LocalEndpoint
        $page.StatusCode | Should -Be 200
        $page.Content | Should -Match 'RemoteItP2P demo page'
        # The counters are refreshed a few times a second: give them a moment.
        $deadline = [DateTime]::UtcNow.AddSeconds(5)
        do { $now = Get-P2PConnection -Id $c.Id; Start-Sleep -Milliseconds 100 } until ($now.BytesReceived -gt 0 -or [DateTime]::UtcNow -gt $deadline)
        $now.BytesReceived | Should -BeGreaterThan 0
    }

    It 'connects from a provisioning file' {
        $file = New-P2PLabProvisioningFile -Lab $Lab
        $c = New-P2PConnection -ProvisioningFile $file -Name fromfile
        $c.State | Should -Be 'Connected'
        (Get-P2PProvisioning $file).LocalPort | Should -Be (Get-PortOf $c)
        (Get-Page $c.LocalEndpoint).Content | Should -Match 'RemoteItP2P demo page'
    }

    It 'accepts provisioning files from the pipeline' {
        $file = New-P2PLabProvisioningFile -Lab $Lab -Name 'piped.txt'
        $c = Get-Item $file | New-P2PConnection -Name piped -LocalPort 0
        $c.Name | Should -Be 'piped'
        Get-PortOf $c | Should -Not -Be (Get-P2PProvisioning $file).LocalPort
        $c.State | Should -Be 'Connected'
    }

    It 'opens ten connections at once, each usable and listed' {
        $all = 1..10 | ForEach-Object { New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name "multi$_" -NoWait }
        $up = $all | Wait-P2PConnection -TimeoutSec 60
        @($up).Count | Should -Be 10
        ($up.LocalEndpoint | Select-Object -Unique).Count | Should -Be 10
        foreach ($c in $up) { (Get-Page $c.LocalEndpoint).StatusCode | Should -Be 200 }
        $listed = Get-P2PConnection -Name 'multi*'
        @($listed).Count | Should -Be 10
        ($listed.Id | Sort-Object) | Should -Be ($up.Id | Sort-Object)
    }

    It 'returns at once with -NoWait' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -NoWait
        $c.State | Should -BeIn @('Connecting', 'Connected')
        ($c | Wait-P2PConnection -TimeoutSec 30).State | Should -Be 'Connected'
    }

    It 'warns about weak encryption and a non-loopback bind address' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Encryption RC4 -WarningVariable w -WarningAction SilentlyContinue
        $c.Encryption | Should -Be 'RC4'
        ($w -join ' ') | Should -Match 'weak'
    }
}

Describe 'Errors' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'a wrong password is an AuthenticationError within the timeout' {
        $bad = [pscredential]::new($Lab.User, (ConvertTo-SecureString 'not-the-password-42' -AsPlainText -Force))
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $err = { New-P2PConnection $Lab.DeviceId $bad @Common -TimeoutSec 20 -ErrorAction Stop } | Should -Throw -PassThru
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 20
        $err.FullyQualifiedErrorId | Should -Be "P2PAuthenticationFailed,$NewId"
        $err.CategoryInfo.Category | Should -Be 'AuthenticationError'
        $err.Exception.Message | Should -Not -Match 'not-the-password-42'
        Get-P2PConnection | Should -BeNullOrEmpty
    }

    It 'an unknown UID is ObjectNotFound' {
        $err = { New-P2PConnection 80:00:00:00:01:00:FF:FF $Lab.Credential @Common -TimeoutSec 20 -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be "P2PDeviceNotFound,$NewId"
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'a port in use is ResourceUnavailable' {
        $port = Get-FreeTcpPort
        $taken = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $port)
        $taken.Start()
        try {
            $err = { New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -LocalPort $port -ErrorAction Stop } | Should -Throw -PassThru
            $err.FullyQualifiedErrorId | Should -Be "P2PPortInUse,$NewId"
            $err.CategoryInfo.Category | Should -Be 'ResourceUnavailable'
            $err.Exception.Message | Should -Match "$port"
        } finally { $taken.Stop() }
    }

    It 'a malformed provisioning file is a ParserError with its line' {
        $file = Join-Path $Lab.Dir 'malformed.txt'
        "user_id me`nauth_pass x`nremote_address 80:00:00:00:01:00:0A:C2`nproxy_local_port lots`n" | Set-Content $file
        $err = { New-P2PConnection -ProvisioningFile $file -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be "P2PProvisioningInvalid,$NewId"
        $err.CategoryInfo.Category | Should -Be 'ParserError'
        $err.Exception.Line | Should -Be 4
        $err.Exception.Key | Should -Be 'proxy_local_port'
        $err.Exception.Message | Should -Match 'malformed.txt:4:'
        Get-P2PProvisioning $file -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].FullyQualifiedErrorId | Should -BeLike 'P2PProvisioningInvalid,*'
        $e[0].Exception.Line | Should -Be 4
    }

    It 'an unreachable server is a ConnectionError within the timeout' {
        $closed = Get-FreeTcpPort
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $err = { New-P2PConnection $Lab.DeviceId $Lab.Credential -Server "127.0.0.1:$closed" -ServerKey $Lab.ServerKey -TimeoutSec 20 -ErrorAction Stop } |
            Should -Throw -PassThru
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 20
        $err.FullyQualifiedErrorId | Should -Be "P2PServerUnreachable,$NewId"
        $err.CategoryInfo.Category | Should -Be 'ConnectionError'
    }

    It 'an invalid UID is refused before anything starts' {
        { New-P2PConnection 80:00:00 $Lab.Credential @Common } | Should -Throw -ErrorId 'ParameterArgumentValidationError*'
    }
}

Describe 'Get-P2PConnection and Stop-P2PConnection' {
    It 'Get-P2PConnection | Stop-P2PConnection closes them all and frees the ports' {
        $all = 1..3 | ForEach-Object { New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name "stop$_" }
        $ports = $all | ForEach-Object { Get-PortOf $_ }
        foreach ($p in $ports) { Test-TcpPortOpen $p | Should -BeTrue }
        Get-P2PConnection | Stop-P2PConnection
        Get-P2PConnection | Should -BeNullOrEmpty
        foreach ($p in $ports) { Test-TcpPortOpen $p | Should -BeFalse }
    }

    It 'stopping twice is harmless' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        $c | Stop-P2PConnection
        { $c | Stop-P2PConnection -ErrorAction Stop } | Should -Not -Throw
    }

    It '-WhatIf stops nothing' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name whatif
        Get-P2PConnection | Stop-P2PConnection -WhatIf
        (Get-P2PConnection -Id $c.Id).State | Should -Be 'Connected'
        Test-TcpPortOpen (Get-PortOf $c) | Should -BeTrue
        $c | Stop-P2PConnection
    }

    It '-PassThru returns the stopped connection' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name passthru
        $final = Stop-P2PConnection -Name passthru -PassThru
        $final.Id | Should -Be $c.Id
        $final.State | Should -Be 'Stopped'
    }

    It 'an unknown Id or Name is a non-terminating ObjectNotFound error' {
        Get-P2PConnection -Id 999999 -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].FullyQualifiedErrorId | Should -BeLike 'P2PConnectionNotFound,*'
        $e[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Get-P2PConnection -Name 'no*such' | Should -BeNullOrEmpty
    }

    It 'completes -Name and -Id from the open connections' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name 'complete me'
        $line = 'Get-P2PConnection -Name comp'
        $r = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $r.CompletionMatches.CompletionText | Should -Contain "'complete me'"
        $line = 'Stop-P2PConnection -Id '
        $r = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $r.CompletionMatches.CompletionText | Should -Contain "$($c.Id)"
        $c | Stop-P2PConnection
    }
}

Describe 'Process-wide sessions' {
    It 'a second runspace sees the same sessions' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name shared
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$ModulePath'; (Get-P2PConnection -Name shared).Id")
            $ids = $ps.Invoke()
            $ids | Should -Contain $c.Id
        } finally { $ps.Dispose() }
        $c | Stop-P2PConnection
    }

    It 'the host survives a native panic (the test build of the library, which has a panic hook)' {
        # The shipped library has no hook; the test build (native/p2p-ffi-testhooks) is the same library
        # plus p2p_test_inject_panic. A fresh pwsh loads it through the module's override variable and
        # calls the hook directly, so the panic happens in the very library instance the module uses.
        $hooks = Get-P2PTestHooksLibrary
        if (-not $hooks) { Set-ItResult -Skipped -Because 'the test build of the library is not built (cargo test -p p2p-ffi-testhooks)'; return }
        $script = Join-Path $TestDrive 'panic.ps1'
        Set-Content -LiteralPath $script -Value @'
param($Module, $Library)
$env:REMOTEITP2P_NATIVE_LIB = $Library
Import-Module $Module
$null = Get-P2PConnection
[RemoteItP2P.ModuleLifetime]::NativeVersion()
Add-Type -Namespace P2PTest -Name Hooks -MemberDefinition ('[DllImport(@"' + $Library + '")] public static extern int p2p_test_inject_panic(int where_);')
foreach ($where in 0, 1) { "rc $where = $([P2PTest.Hooks]::p2p_test_inject_panic($where))" }
"sessions $(@(Get-P2PConnection).Count)"
'alive'
'@
        $out = & (Get-PwshPath) -NoProfile -NonInteractive -File $script -Module $ModulePath -Library $hooks
        $LASTEXITCODE | Should -Be 0
        $panic = [int][RemoteItP2P.Native.P2PResultCode]::Panic
        ($out -join "`n") | Should -Match ([regex]::Escape($hooks))
        $out | Should -Contain "rc 0 = $panic"
        $out | Should -Contain "rc 1 = $panic"
        $out | Should -Contain 'sessions 0'
        $out | Should -Contain 'alive'
    }

    It 'Remove-Module with live sessions leaves no listening port' {
        $all = 1..2 | ForEach-Object { New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name "remove$_" }
        $ports = $all | ForEach-Object { Get-PortOf $_ }
        Remove-Module RemoteItP2P
        foreach ($p in $ports) { Test-TcpPortOpen $p | Should -BeFalse }
        Import-Module $ModulePath -Force
        Get-P2PConnection | Should -BeNullOrEmpty
    }
}

Describe 'The server from the environment (README step 5)' {
    BeforeAll {
        # These tests decide what this process's environment holds; put back what was there.
        $script:SavedEnv = @{ P2P_SERVER = $env:P2P_SERVER; P2P_SERVER_KEY = $env:P2P_SERVER_KEY }
        function script:Clear-ServerEnv { Remove-Item Env:P2P_SERVER, Env:P2P_SERVER_KEY -ErrorAction SilentlyContinue }
    }
    AfterEach {
        Get-P2PConnection | Stop-P2PConnection
        Clear-ServerEnv
    }
    AfterAll {
        foreach ($name in $SavedEnv.Keys) { Set-Item "Env:$name" $SavedEnv[$name] -ErrorAction SilentlyContinue }
    }

    It 'a fresh pwsh that sets $env:P2P_SERVER and $env:P2P_SERVER_KEY as README step 5 does connects without -Server' {
        Clear-ServerEnv   # the child inherits this process's environment: only its own lines may set them
        $script = Join-Path $Lab.Dir 'readme-step5.ps1'
        @'
param($ModulePath, $Server, $ServerKey, $DeviceId, $User, $Password)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$env:P2P_SERVER = $Server; $env:P2P_SERVER_KEY = $ServerKey
$cred = [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
$c = New-P2PConnection $DeviceId $cred -LocalPort 0
$page = Invoke-WebRequest -Uri "http://$($c.LocalEndpoint)/" -UseBasicParsing -TimeoutSec 20
"state=$($c.State) status=$($page.StatusCode)"
$c | Stop-P2PConnection
'@ | Set-Content -LiteralPath $script -Encoding utf8
        $out = & (Get-PwshPath) -NoProfile -NonInteractive -File $script -ModulePath $ModulePath -Server $Lab.Server `
            -ServerKey $Lab.ServerKey -DeviceId $Lab.DeviceId -User $Lab.User -Password $Lab.Password 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($out | Out-String)
        ($out | Out-String) | Should -Match 'state=Connected status=200'
    }

    It 'New-P2PConnection and Test-P2PNetwork read $env:P2P_SERVER set in this process' {
        $env:P2P_SERVER = $Lab.Server; $env:P2P_SERVER_KEY = $Lab.ServerKey
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential -Name fromenv
        $c.State | Should -Be 'Connected'
        (Get-Page $c.LocalEndpoint).StatusCode | Should -Be 200
        (Test-P2PNetwork -TimeoutSec 3).Server | Should -Be $Lab.Server
    }

    It 'a provisioning file without a server takes it from the environment, and its own server wins' {
        $file = Join-Path $Lab.Dir 'no-server.txt'
        @("user_id $($Lab.User)", "auth_pass $($Lab.Password)", "proxy_local_port $(Get-FreeTcpPort)",
            'proxy_bind_address 127.0.0.1', "remote_address $($Lab.DeviceId)") | Set-Content -LiteralPath $file -Encoding ascii
        $err = { New-P2PConnection -ProvisioningFile $file -ErrorAction Stop } | Should -Throw -PassThru
        $err.Exception.Message | Should -Match "'server' line"
        $env:P2P_SERVER = $Lab.Server; $env:P2P_SERVER_KEY = $Lab.ServerKey
        (New-P2PConnection -ProvisioningFile $file -Name envfile).State | Should -Be 'Connected'
        # A file that names the server is not overridden by the environment.
        $env:P2P_SERVER = "127.0.0.1:$(Get-FreeTcpPort)"
        (New-P2PConnection -ProvisioningFile (New-P2PLabProvisioningFile -Lab $Lab -Name 'with-server.txt') -Name ownfile).State |
            Should -Be 'Connected'
    }

    It 'without a server the error names -Server and $env:P2P_SERVER, not connectd''s flags' {
        Clear-ServerEnv
        $err = { New-P2PConnection $Lab.DeviceId $Lab.Credential -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be "P2PInvalidConfiguration,$NewId"
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $err.Exception.Message | Should -Match '-Server host:port'
        $err.Exception.Message | Should -Match '\$env:P2P_SERVER'
        $err.Exception.Message | Should -Not -Match '(^|\s)-y\b|--server'
        Get-P2PConnection | Should -BeNullOrEmpty

        $err = { New-P2PConnection $Lab.DeviceId $Lab.Credential -Server $Lab.Server -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be "P2PInvalidConfiguration,$NewId"
        $err.Exception.Message | Should -Match '-ServerKey'
        $err.Exception.Message | Should -Match '\$env:P2P_SERVER_KEY'
        $err.Exception.Message | Should -Not -Match '--server-key'

        $err = { Test-P2PNetwork -TimeoutSec 3 } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -BeLike 'P2PInvalidConfiguration,*'
        $err.Exception.Message | Should -Match '-Server'
    }
}

Describe 'Byte counters' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'Get-P2PConnection shows the exact bytes each way within the documented 0.5 s, and Stop -PassThru the exact totals' {
        $c = New-P2PConnection $Lab.EchoDeviceId $Lab.Credential @Common -Name counted
        $c.State | Should -Be 'Connected'
        $mib = 1MB
        Invoke-EchoTransfer -Endpoint $c.LocalEndpoint -Bytes (8 * $mib) | Should -Be (8 * $mib)
        # The documented refresh interval (Get-Help Get-P2PConnection): never more than 0.5 s behind.
        Start-Sleep -Milliseconds 500
        $now = Get-P2PConnection -Id $c.Id
        $now.BytesSent | Should -Be (8 * $mib)
        $now.BytesReceived | Should -Be (8 * $mib)
        # More traffic, then stop at once, before any refresh: the final object has the exact totals.
        $more = 3 * $mib + 12345
        Invoke-EchoTransfer -Endpoint $c.LocalEndpoint -Bytes $more | Should -Be $more
        $final = $c | Stop-P2PConnection -PassThru
        $final.State | Should -Be 'Stopped'
        $final.BytesSent | Should -Be (8 * $mib + $more)
        $final.BytesReceived | Should -Be (8 * $mib + $more)
    }

    It 'the help of Get-P2PConnection documents the refresh interval' {
        (Get-Help Get-P2PConnection -Full | Out-String -Width 300) | Should -Match 'never more than 0\.5 seconds behind'
    }
}

Describe 'Get-P2PProvisioning and Test-P2PNetwork' {
    It 'reads a provisioning file without its secret' {
        $file = New-P2PLabProvisioningFile -Lab $Lab -Password 'never-shown-secret'
        $p = Get-P2PProvisioning $file
        $p.Kind | Should -Be 'Initiator'
        $p.DeviceId | Should -Be $Lab.DeviceId
        $p.HasPassword | Should -BeTrue
        ($p | Out-String) | Should -Not -Match 'never-shown-secret'
    }

    It 'runs the self-test against the server' {
        $r = Test-P2PNetwork -Server $Lab.Server -TimeoutSec 3
        $r.PSObject.TypeNames | Should -Contain 'RemoteItP2P.P2PNetworkTest'
        $r.Server | Should -Be $Lab.Server
        $r.Report | Should -Not -BeNullOrEmpty
    }
}

Describe 'Help' {
    It 'every cmdlet has help with examples' {
        foreach ($name in (Get-Command -Module RemoteItP2P).Name) {
            $h = Get-Help $name -Full
            $h.Synopsis | Should -Not -BeNullOrEmpty
            @($h.examples.example).Count | Should -BeGreaterThan 0
        }
    }

    It 'New-P2PConnection -Examples shows the replacement of the three options of the seed' {
        $text = Get-Help New-P2PConnection -Examples | Out-String -Width 200
        $text | Should -Match 'Option 1 of the seed'
        $text | Should -Match 'Option 2 of the seed'
        $text | Should -Match 'Option 3 of the seed'
    }
}
