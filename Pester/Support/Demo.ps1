# build.ps1 -Task Demo: a local server, a target in front of a small web page, a connection, one request
# through it, the connection table, and a clean stop.
$ErrorActionPreference = 'Stop'
$module = if ($env:REMOTEITP2P_MODULE_PATH) { $env:REMOTEITP2P_MODULE_PATH } else { Join-Path $PSScriptRoot '../../out/RemoteItP2P' }
Import-Module (Join-Path $PSScriptRoot 'P2PLab.psm1') -Force
Import-Module $module -Force

Write-Host '--- starting a server, a web page and a target (connectd -f target.conf) on loopback'
$lab = Start-P2PLab
try {
    Write-Host "server $($lab.Server), device $($lab.DeviceId) forwarding to the page on 127.0.0.1:$($lab.WebPort)"
    Write-Host "--- New-P2PConnection, with the device's fingerprint read on it (connectd --fingerprint -f target.conf: $($lab.DeviceFingerprint))"
    $c = New-P2PConnection -DeviceId $lab.DeviceId -Credential $lab.Credential -Server $lab.Server -ServerKey $lab.ServerKey -DeviceKey $lab.DeviceFingerprint -Name demo
    Write-Host "--- Invoke-WebRequest http://$($c.LocalEndpoint)/"
    $page = Invoke-WebRequest -Uri "http://$($c.LocalEndpoint)/" -UseBasicParsing -TimeoutSec 15
    Write-Host "HTTP $($page.StatusCode): $(([regex]::Match($page.Content, '<h1>(.*?)</h1>')).Groups[1].Value)"
    Write-Host '--- Get-P2PConnection'
    # The native side publishes byte counters and RTT every 250 ms: let the request's figures show.
    Start-Sleep -Milliseconds 600
    Get-P2PConnection | Format-Table | Out-String -Width 160 | Write-Host
    Write-Host '--- Get-P2PConnection | Stop-P2PConnection'
    Get-P2PConnection | Stop-P2PConnection
    $open = Get-P2PConnection
    if ($open) { throw "connections left open: $($open.Id -join ', ')" }
    Write-Host "stopped; $($c.LocalEndpoint) is closed."
} finally {
    Stop-P2PLab $lab
}
Write-Host 'Demo finished: the connection was used and closed, the lab is stopped.'
