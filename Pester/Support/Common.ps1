# The set-up shared by the Pester files that run against a real lab (P2PLab.psm1). Dot-source it from the
# file's BeforeAll: . (Join-Path $PSScriptRoot 'Support/Common.ps1')
# It sets $ModulePath (the module under test: $env:REMOTEITP2P_MODULE_PATH, or out/RemoteItP2P), imports
# P2PLab and that module, starts the lab ($Lab) and sets $Common (-Server and -ServerKey, for splatting).
# Stop-P2PTestLab, for the file's AfterAll, stops the connections left open and the lab.

$script:ModulePath = if ($env:REMOTEITP2P_MODULE_PATH) { $env:REMOTEITP2P_MODULE_PATH } else { Join-Path $PSScriptRoot '../../out/RemoteItP2P' }
$script:ModulePath = (Resolve-Path $script:ModulePath).ProviderPath
Import-Module (Join-Path $PSScriptRoot 'P2PLab.psm1') -Force
Import-Module $script:ModulePath -Force
$script:Lab = Start-P2PLab
$script:Common = @{ Server = $Lab.Server; ServerKey = $Lab.ServerKey }

function script:Stop-P2PTestLab {
    Get-P2PConnection | Stop-P2PConnection -ErrorAction SilentlyContinue
    Stop-P2PLab $script:Lab
}

# Stop-P2PConnection refuses $Other (a connection object of another process: P2PConnectionFromOtherProcess)
# and closes nothing: $Mine, the connection of this process with the same Id, is still connected.
function script:Assert-StopRefusesOtherProcess($Other, $Mine) {
    $Other | Stop-P2PConnection -ErrorVariable e -ErrorAction SilentlyContinue
    $e[0].FullyQualifiedErrorId | Should -BeLike 'P2PConnectionFromOtherProcess,*'
    (Get-P2PConnection -Id $Mine.Id).State | Should -Be 'Connected'
}

# Runs $Command with $Parameters in another runspace of this process (the module imported there first), lets
# it block in its wait for $AfterMs, then stops it as Ctrl+C does (PowerShell.Stop(), so StopProcessing) and
# returns how long stopping took. The command must still be running when it is stopped.
function script:Measure-CtrlC([string] $Command, [hashtable] $Parameters, [int] $AfterMs = 700) {
    $iss = [initialsessionstate]::CreateDefault2()
    $iss.ImportPSModule([string[]] @($script:ModulePath))
    $runspace = [runspacefactory]::CreateRunspace($iss)
    $runspace.Open()
    $ps = [powershell]::Create()
    $ps.Runspace = $runspace
    try {
        [void] $ps.AddCommand($Command).AddParameters($Parameters)
        [void] $ps.BeginInvoke()
        Start-Sleep -Milliseconds $AfterMs
        # (Not $ps.Streams.Error here: enumerating a running pipeline's stream blocks until it ends.)
        $ps.InvocationStateInfo.State | Should -Be 'Running' -Because "$Command should still be waiting"
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $ps.Stop()
        $clock.Stop()
        # Stopped, or Completed when the command returned by itself from its cancelled wait first.
        $ps.InvocationStateInfo.State | Should -BeIn 'Stopped', 'Completed'
        $clock.Elapsed
    } finally {
        $ps.Dispose()
        $runspace.Dispose()
    }
}

# A TCP server that accepts connections and never answers: a connection to it stays Connecting, and a
# network self-test waits for it. Stop() it afterwards; its address is "127.0.0.1:$($s.LocalEndpoint.Port)".
function script:Start-SilentServer {
    $listener = [System.Net.Sockets.TcpListener]::new([ipaddress]::Loopback, 0)
    $listener.Start()
    $listener
}
