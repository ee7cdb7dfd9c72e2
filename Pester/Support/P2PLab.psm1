# A real RemoteItP2P setup on this machine, for the Pester tests and build.ps1's Demo: a p2p-server with a
# user and a device, a small web page, and a target (connectd -f target.conf) that forwards to it; with
# -Echo, a second device whose target forwards to a TCP echo service (for byte-exact transfers).
# Everything listens on loopback only, on ports the OS picks, and stops with Stop-P2PLab.

Set-StrictMode -Version Latest

$script:RepoRoot = Split-Path (Split-Path $PSScriptRoot -Parent) -Parent

function Get-P2PBinary {
    <# The path of a built executable: $env:REMOTEITP2P_BIN_DIR, else target/release, else target/debug. #>
    param([Parameter(Mandatory)] [string] $Name)
    $file = if ($IsWindows -or $env:OS -eq 'Windows_NT') { "$Name.exe" } else { $Name }
    $dirs = @($env:REMOTEITP2P_BIN_DIR, (Join-Path $script:RepoRoot 'target/release'), (Join-Path $script:RepoRoot 'target/debug')) |
        Where-Object { $_ }
    foreach ($dir in $dirs) {
        $path = Join-Path $dir $file
        if (Test-Path -LiteralPath $path -PathType Leaf) { return (Resolve-Path -LiteralPath $path).ProviderPath }
    }
    throw "The $Name executable was not found in $($dirs -join ', '). Run ./build.ps1 -Task Build first."
}

function Get-P2PTestHooksLibrary {
    <# The test build of the native library (native/p2p-ffi-testhooks: the C ABI plus a panic hook) for this
       platform, built by cargo test; nothing when it is not built. #>
    $isWin = $IsWindows -or $env:OS -eq 'Windows_NT'
    $path = if ($isWin) { Join-Path $script:RepoRoot 'target/windows/x86_64-pc-windows-gnu/release/remoteitp2p_testhooks.dll' }
            else { Join-Path $script:RepoRoot 'target/release/libremoteitp2p_testhooks.so' }
    if (Test-Path -LiteralPath $path -PathType Leaf) { (Resolve-Path -LiteralPath $path).ProviderPath }
}

function Get-PwshPath {
    <# The PowerShell executable for child processes. Not (Get-Process -Id $PID).Path: as a .NET global
       tool, that is dotnet itself. #>
    $cmd = Get-Command pwsh -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($cmd) { return $cmd.Source }
    foreach ($name in 'pwsh', 'pwsh.exe', 'powershell.exe') {
        $path = Join-Path $PSHOME $name
        if (Test-Path -LiteralPath $path) { return $path }
    }
    throw 'Cannot find the PowerShell executable (pwsh) on PATH or in $PSHOME.'
}

function Get-FreeTcpPort {
    $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    $l.Start()
    try { ([System.Net.IPEndPoint]$l.LocalEndpoint).Port } finally { $l.Stop() }
}

function Test-TcpPortOpen {
    <# True when something accepts TCP connections on 127.0.0.1:$Port. #>
    param([Parameter(Mandatory)] [int] $Port)
    $client = [System.Net.Sockets.TcpClient]::new()
    try {
        $task = $client.ConnectAsync('127.0.0.1', $Port)
        $task.Wait(2000) -and $client.Connected
    } catch { $false } finally { $client.Dispose() }
}

function Invoke-Admin {
    <# Runs a p2p-server admin command, feeding $Secret on stdin (passwords are never on the command line). #>
    param([string] $Server, [string[]] $Arguments, [string] $Secret)
    $output = if ($null -ne $Secret) { $Secret | & $Server @Arguments 2>&1 } else { & $Server @Arguments 2>&1 }
    if ($LASTEXITCODE -ne 0) { throw "p2p-server $($Arguments -join ' ') failed ($LASTEXITCODE): $output" }
    $output
}

function Wait-ForFile {
    param([string] $Path, [scriptblock] $Until, [int] $TimeoutSec = 20, [System.Diagnostics.Process] $Process, [string] $What)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSec)
    while ([DateTime]::UtcNow -lt $deadline) {
        if (Test-Path -LiteralPath $Path) {
            $text = Get-Content -LiteralPath $Path -Raw -ErrorAction SilentlyContinue
            if ($text -and (& $Until $text)) { return $text }
        }
        if ($Process -and $Process.HasExited) { break }
        Start-Sleep -Milliseconds 100
    }
    $log = if (Test-Path -LiteralPath $Path) { Get-Content -LiteralPath $Path -Raw } else { '(no output)' }
    throw "$What did not become ready within $TimeoutSec s. Its output: $log"
}

function Start-LabProcess {
    param([string] $FilePath, [string[]] $ArgumentList, [string] $Dir, [string] $Name)
    $out = Join-Path $Dir "$Name.out.txt"
    $err = Join-Path $Dir "$Name.err.txt"
    $p = Start-Process -FilePath $FilePath -ArgumentList $ArgumentList -RedirectStandardOutput $out `
        -RedirectStandardError $err -PassThru -NoNewWindow
    [pscustomobject]@{ Name = $Name; Process = $p; Out = $out; Err = $err }
}

function Start-LabService {
    <# Starts a local service (a script of this folder, in its own pwsh) and a target (connectd -f) that
       exposes it as device $Uid; waits for both and returns the service's port. #>
    param($Lab, [string] $Connectd, [string] $Script, [string] $ServiceName, [string] $TargetName,
        [string] $Uid, [string] $Secret, [int] $AppType)
    $port = Get-FreeTcpPort
    $service = Start-LabProcess (Get-PwshPath) @('-NoProfile', '-NonInteractive', '-File', (Join-Path $PSScriptRoot $Script), '-Port', $port) $Lab.Dir $ServiceName
    $Lab.Processes.Add($service)
    Wait-ForFile $service.Out { param($t) $t -match 'listening' } -Process $service.Process -What "the $ServiceName service" | Out-Null
    $conf = Join-Path $Lab.Dir "$TargetName.conf"
    @(
        "UID $Uid"
        "password $Secret"
        'proxy_dest_ip 127.0.0.1'
        "proxy_dest_port $port"
        "application_type $AppType"
        "server $($Lab.Server)"
        "server_key $($Lab.ServerKey)"
    ) | Set-Content -LiteralPath $conf -Encoding ascii
    $target = Start-LabProcess $Connectd @('-f', $conf) $Lab.Dir $TargetName
    $Lab.Processes.Add($target)
    Wait-ForFile $target.Out { param($t) $t -match 'Registered' } -Process $target.Process -What "the $TargetName (connectd -f $TargetName.conf)" | Out-Null
    $port
}

function Add-LabDevicePin {
    <# Pins device $Uid's key for this user as a careful user does, once: its fingerprint read on the device
       (connectd --fingerprint -f TARGET-FILE) and given to one connection (connectd --device-key), which pins
       it in known_devices once the device proved it. Later connections, the cmdlets' too (the same
       known_devices), need no -DeviceKey: a mode 3 connection refuses a device whose key is neither given nor
       pinned. Returns the fingerprint. #>
    param($Lab, [string] $Connectd, [string] $Uid, [string] $TargetName)
    $conf = Join-Path $Lab.Dir "$TargetName.conf"
    $fingerprint = "$(& $Connectd --fingerprint -f $conf)".Trim()
    if ($LASTEXITCODE -ne 0 -or $fingerprint -notlike 'SHA256:*') { throw "connectd --fingerprint -f $conf failed ($LASTEXITCODE): $fingerprint" }
    $file = Join-Path $Lab.Dir "pin-$TargetName.txt"
    @(
        'autoconnect 1'
        "user_id $($Lab.User)"
        "auth_pass $($Lab.Password)"
        "proxy_local_port $(Get-FreeTcpPort)"
        "remote_address $Uid"
        "server $($Lab.Server)"
        "server_key $($Lab.ServerKey)"
    ) | Set-Content -LiteralPath $file -Encoding ascii
    $pin = Start-LabProcess $Connectd @('-s', '-v', '--device-key', $fingerprint, '-f', $file) $Lab.Dir "pin-$TargetName"
    try {
        Wait-ForFile $pin.Err { param($t) $t -match 'peer key \S+ \((new pin|pinned)' } -Process $pin.Process -What "the pinning connection to $Uid" | Out-Null
    } finally {
        try { $pin.Process.Kill() } catch { }
        try { $pin.Process.WaitForExit(5000) | Out-Null } catch { }
    }
    $fingerprint
}

function Start-P2PLab {
    <#
    .SYNOPSIS
    Starts a server, a web page and a target; returns what a client needs to connect.
    #>
    [CmdletBinding()]
    param(
        [string] $User = 'tester',
        [string] $Password = 'correct horse battery staple',
        [string] $DeviceId = '80:00:00:00:01:00:0A:C2',
        [string] $DeviceSecret = 'device-secret-0123456789',
        # Also a second device, EchoDeviceId, in front of a TCP echo service (Support/Echo.ps1).
        [switch] $Echo,
        [string] $EchoDeviceId = '80:00:00:00:01:00:0A:C3'
    )
    $server = Get-P2PBinary 'p2p-server'
    $connectd = Get-P2PBinary 'connectd'
    $dir = Join-Path ([System.IO.Path]::GetTempPath()) ("p2plab-" + [guid]::NewGuid().ToString('N').Substring(0, 8))
    New-Item -ItemType Directory -Path $dir | Out-Null
    $data = Join-Path $dir 'server'
    $lab = [pscustomobject]@{
        Dir = $dir; Server = $null; ServerKey = $null; DeviceId = $DeviceId; User = $User; Password = $Password
        Credential = [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
        UdpAddresses = @(); WebPort = 0; EchoDeviceId = $null; EchoPort = 0; Processes = [System.Collections.Generic.List[object]]::new()
        DeviceFingerprint = $null; EchoDeviceFingerprint = $null
    }
    try {
        Invoke-Admin $server @('init', '--data-dir', $data) | Out-Null
        Invoke-Admin $server @('user', 'add', $User, '--data-dir', $data) $Password | Out-Null
        Invoke-Admin $server @('device', 'add', $DeviceId, '--owner', $User, '--name', 'web', '--app-type', '7', '--data-dir', $data) $DeviceSecret | Out-Null
        if ($Echo) {
            Invoke-Admin $server @('device', 'add', $EchoDeviceId, '--owner', $User, '--name', 'echo', '--app-type', '1', '--data-dir', $data) $DeviceSecret | Out-Null
        }

        $ready = Join-Path $dir 'ready.json'
        $srv = Start-LabProcess $server @('run', '--data-dir', $data, '--control', '127.0.0.1:0', '--udp', '127.0.0.1:0',
            '--udp2', '127.0.0.1:0', '--udp3', '127.0.0.2:0', '--ready-file', $ready,
            '--max-failures-per-user', '1000', '--max-failures-per-ip', '1000') $dir 'server'
        $lab.Processes.Add($srv)
        $info = Wait-ForFile $ready { param($t) $t.Trim().EndsWith('}') } -Process $srv.Process -What 'p2p-server' | ConvertFrom-Json
        $lab.Server = "$($info.control)"
        $lab.ServerKey = "$($info.server_key)"
        $lab.UdpAddresses = @($info.udp | ForEach-Object { "$_" })

        $lab.WebPort = Start-LabService $lab $connectd 'WebPage.ps1' 'web' 'target' $DeviceId $DeviceSecret 7
        $lab.DeviceFingerprint = Add-LabDevicePin $lab $connectd $DeviceId 'target'
        if ($Echo) {
            $lab.EchoPort = Start-LabService $lab $connectd 'Echo.ps1' 'echo' 'echo-target' $EchoDeviceId $DeviceSecret 1
            $lab.EchoDeviceId = $EchoDeviceId
            $lab.EchoDeviceFingerprint = Add-LabDevicePin $lab $connectd $EchoDeviceId 'echo-target'
        }
        $lab
    } catch {
        Stop-P2PLab $lab
        throw
    }
}

function Start-P2PLabKeyTarget {
    <# Starts a target for $DeviceId (already added to the server with $Secret) in front of the lab's web
       page, its device key in $KeyFile (device_key_file); waits for its registration and returns its key's
       fingerprint (connectd --fingerprint) and its process. The lab stops it. #>
    param([Parameter(Mandatory)] $Lab, [string] $DeviceId, [string] $Secret, [string] $KeyFile, [string] $Name)
    $connectd = Get-P2PBinary 'connectd'
    $conf = Join-Path $Lab.Dir "$Name.conf"
    @(
        "UID $DeviceId"
        "password $Secret"
        'proxy_dest_ip 127.0.0.1'
        "proxy_dest_port $($Lab.WebPort)"
        'application_type 7'
        "server $($Lab.Server)"
        "server_key $($Lab.ServerKey)"
        "device_key_file $KeyFile"
    ) | Set-Content -LiteralPath $conf -Encoding ascii
    $fingerprint = "$(& $connectd --fingerprint -f $conf)".Trim()
    if ($LASTEXITCODE -ne 0) { throw "connectd --fingerprint -f $conf failed ($LASTEXITCODE)" }
    $target = Start-LabProcess $connectd @('-f', $conf) $Lab.Dir $Name
    $Lab.Processes.Add($target)
    Wait-ForFile $target.Out { param($t) $t -match 'Registered' } -Process $target.Process -What "the $Name (connectd -f $Name.conf)" | Out-Null
    [pscustomobject]@{ Fingerprint = $fingerprint; Process = $target.Process }
}

function Invoke-P2PLabAdmin {
    <# A p2p-server admin command on the lab's data directory (p2p-server ARGS --data-dir ...). #>
    param([Parameter(Mandatory)] $Lab, [string[]] $Arguments, [string] $Secret)
    Invoke-Admin (Get-P2PBinary 'p2p-server') ($Arguments + @('--data-dir', (Join-Path $Lab.Dir 'server'))) $Secret
}

function New-P2PLabProvisioningFile {
    <# Writes an initiator provisioning file for the lab's device and returns its path. #>
    param([Parameter(Mandatory)] $Lab, [string] $Password = 'correct horse battery staple', [string] $Name = 'initiator.txt',
        [int] $LocalPort)
    # connectd requires proxy_local_port (1-65535): pick a free one unless told.
    if (-not $LocalPort) { $LocalPort = Get-FreeTcpPort }
    $path = Join-Path $Lab.Dir $Name
    @(
        '# initiator provisioning file written by the tests'
        'autoconnect 1'
        "user_id $($Lab.User)"
        "auth_pass $Password"
        "proxy_local_port $LocalPort"
        'proxy_bind_address 127.0.0.1'
        "remote_address $($Lab.DeviceId)"
        "server $($Lab.Server)"
        "server_key $($Lab.ServerKey)"
    ) | Set-Content -LiteralPath $path -Encoding ascii
    $path
}

function Invoke-EchoTransfer {
    <#
    .SYNOPSIS
    Sends $Bytes bytes to an echo service at $Endpoint (host:port), reads them all back, checks them, and
    returns how many came back. Writing and reading overlap (an echo backs up otherwise).
    #>
    param([Parameter(Mandatory)] [string] $Endpoint, [Parameter(Mandatory)] [long] $Bytes, [int] $TimeoutSec = 60)
    $hostName, $port = $Endpoint -split ':(?=\d+$)'
    $data = [byte[]]::new($Bytes)
    [System.Random]::new([int]($Bytes % 100003)).NextBytes($data)
    $client = [System.Net.Sockets.TcpClient]::new()
    try {
        $client.Connect($hostName, [int]$port)
        $client.ReceiveTimeout = $TimeoutSec * 1000
        $stream = $client.GetStream()
        $write = $stream.WriteAsync($data, 0, $data.Length)
        $back = [byte[]]::new($Bytes)
        $got = 0
        $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSec)
        while ($got -lt $Bytes) {
            $n = $stream.Read($back, $got, [int][Math]::Min(1MB, $Bytes - $got))
            if ($n -le 0) { break }
            $got += $n
            if ([DateTime]::UtcNow -gt $deadline) { throw "the echo of $Bytes bytes did not complete within $TimeoutSec s ($got back)" }
        }
        if (-not $write.Wait($TimeoutSec * 1000)) { throw 'writing to the echo service did not complete' }
        $client.Client.Shutdown([System.Net.Sockets.SocketShutdown]::Send)
        # Nothing more may come back: the echo half-closes after the last byte.
        $extra = [byte[]]::new(1)
        if ($stream.Read($extra, 0, 1) -ne 0) { throw 'the echo service sent more than it was sent' }
        if (-not [System.Linq.Enumerable]::SequenceEqual($data, $back)) { throw 'the echoed bytes differ from those sent' }
        $got
    } finally { $client.Dispose() }
}

function Stop-P2PLab {
    param($Lab)
    if (-not $Lab) { return }
    # The target first, so the server sees it leave; then the page and the server.
    $list = @($Lab.Processes)
    [array]::Reverse($list)
    foreach ($p in $list) {
        if ($p -and -not $p.Process.HasExited) {
            # The whole tree: the pwsh of a .NET global tool runs `dotnet pwsh.dll` as a child, which a
            # plain Kill() left running after the tests. (Kill(bool) needs .NET Core 3+; 5.1 falls back.)
            try { $p.Process.Kill($true) } catch { try { $p.Process.Kill() } catch { } }
            try { $p.Process.WaitForExit(5000) | Out-Null } catch { }
        }
    }
    $Lab.Processes.Clear()
    Remove-Item -LiteralPath $Lab.Dir -Recurse -Force -ErrorAction SilentlyContinue
}

Export-ModuleMember -Function Get-PwshPath, Get-P2PTestHooksLibrary, Get-P2PBinary, Get-FreeTcpPort, Test-TcpPortOpen, Start-P2PLab, Stop-P2PLab, New-P2PLabProvisioningFile, Invoke-EchoTransfer, Start-P2PLabKeyTarget, Invoke-P2PLabAdmin
