# A TCP echo service for the tests: sends back every byte it receives on each connection, and half-closes
# once the client has half-closed, until the process is stopped. The copying is .NET's own
# (NetworkStream.CopyToAsync onto itself), so several connections run at full speed at once.
param([Parameter(Mandatory)] [int] $Port)
$ErrorActionPreference = 'Stop'
$listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $Port)
$listener.Start()
"listening 127.0.0.1:$(([System.Net.IPEndPoint]$listener.LocalEndpoint).Port)"
$active = [System.Collections.Generic.List[object]]::new()
$accept = $listener.AcceptTcpClientAsync()
while ($true) {
    if ($accept.Wait(20)) {
        $client = $accept.Result
        $client.NoDelay = $true
        $stream = $client.GetStream()
        $active.Add([pscustomobject]@{ Client = $client; Copy = $stream.CopyToAsync($stream, 65536) })
        $accept = $listener.AcceptTcpClientAsync()
    }
    foreach ($a in @($active)) {
        if (-not $a.Copy.IsCompleted) { continue }
        # The client half-closed (or broke): everything it sent was echoed, so end our direction too.
        try { $a.Client.Client.Shutdown([System.Net.Sockets.SocketShutdown]::Send) } catch { }
        $a.Client.Dispose()
        $null = $active.Remove($a)
    }
}
