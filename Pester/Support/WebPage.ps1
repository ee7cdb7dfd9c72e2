# A tiny web page for the tests and the demo: answers every HTTP request on 127.0.0.1:$Port with one
# small HTML page, until the process is stopped. Plain TcpListener, so it needs nothing but PowerShell.
param(
    [Parameter(Mandatory)] [int] $Port,
    [string] $Title = 'RemoteItP2P demo page'
)
$ErrorActionPreference = 'Stop'
$listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $Port)
$listener.Start()
"listening 127.0.0.1:$(([System.Net.IPEndPoint]$listener.LocalEndpoint).Port)"
$body = [System.Text.Encoding]::UTF8.GetBytes(
    "<!DOCTYPE html><html><head><title>$Title</title></head><body><h1>$Title</h1>" +
    "<p>Served by the target's machine and reached through a RemoteItP2P tunnel.</p></body></html>")
while ($true) {
    $client = $listener.AcceptTcpClient()
    try {
        $client.ReceiveTimeout = 5000
        $stream = $client.GetStream()
        # Read the request head (up to the blank line); the page is the same for every path.
        $buffer = New-Object byte[] 8192
        $head = ''
        while ($head -notmatch "`r`n`r`n") {
            $n = $stream.Read($buffer, 0, $buffer.Length)
            if ($n -le 0) { break }
            $head += [System.Text.Encoding]::ASCII.GetString($buffer, 0, $n)
        }
        $header = [System.Text.Encoding]::ASCII.GetBytes(
            "HTTP/1.1 200 OK`r`nContent-Type: text/html; charset=utf-8`r`nContent-Length: $($body.Length)`r`nConnection: close`r`n`r`n")
        $stream.Write($header, 0, $header.Length)
        $stream.Write($body, 0, $body.Length)
        $stream.Flush()
    } catch {
        # One broken client must not end the page for the others.
    } finally {
        $client.Close()
    }
}
