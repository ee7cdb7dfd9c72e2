# Wait-P2PConnection as a PowerShell user types it: -State Stopped on a connection that is
# already stopped, and a job's connection piped to Wait. Against a real lab (Support/P2PLab.psm1).

BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/Common.ps1')
}

AfterAll { Stop-P2PTestLab }

Describe 'Wait-P2PConnection' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'Wait-P2PConnection -State Stopped outputs a connection that is already stopped (item 12)' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        $c | Stop-P2PConnection
        $done = $c | Wait-P2PConnection -State Stopped -TimeoutSec 5
        $done.Id | Should -Be $c.Id
        $done.State | Should -Be 'Stopped'
    }

    It 'a job''s connection piped to Wait-P2PConnection is refused (item 2)' {
        $job = Start-Job {
            param($ModulePath, $Server, $ServerKey, $DeviceId, $User, $Password)
            Import-Module $ModulePath
            $cred = [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
            New-P2PConnection $DeviceId $cred -Server $Server -ServerKey $ServerKey -Name remote-one
        } -ArgumentList $ModulePath, $Lab.Server, $Lab.ServerKey, $Lab.DeviceId, $Lab.User, $Lab.Password
        $local = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name local
        try {
            $out = $job | Receive-Job -Wait | Wait-P2PConnection -TimeoutSec 5 -ErrorVariable e -ErrorAction SilentlyContinue
        } finally { $job | Remove-Job -Force }
        $out | Should -BeNullOrEmpty
        $e[0].FullyQualifiedErrorId | Should -BeLike 'P2PConnectionFromOtherProcess,*'
        (Get-P2PConnection -Id $local.Id).State | Should -Be 'Connected'
    }

    It 'a failed connection lists no LocalEndpoint: its port is closed (item 12)' {
        $bad = [pscredential]::new($Lab.User, (ConvertTo-SecureString 'wrong-password-7' -AsPlainText -Force))
        $c = New-P2PConnection $Lab.DeviceId $bad @Common -NoWait
        $c | Wait-P2PConnection -TimeoutSec 20 -ErrorAction SilentlyContinue
        $now = Get-P2PConnection -Id $c.Id
        $now.State | Should -Be 'Failed'
        $now.LocalEndpoint | Should -BeNullOrEmpty
        $now.LastErrorKind | Should -Be 'AuthFailed'
    }

    It 'Ctrl+C ends Wait-P2PConnection within a second and leaves the connection open' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        $took = Measure-CtrlC 'Wait-P2PConnection' @{ Id = $c.Id; State = 'Stopped' }
        $took.TotalSeconds | Should -BeLessThan 1
        (Get-P2PConnection -Id $c.Id).State | Should -Be 'Connected'
    }

    It 'Wait-P2PConnection returns when the state changes, not at its next poll' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        # Another runspace stops it after half a second; the wait, blocked in the native library, wakes then.
        $iss = [initialsessionstate]::CreateDefault2()
        $iss.ImportPSModule([string[]] @($ModulePath))
        $stopper = [powershell]::Create($iss)
        try {
            [void] $stopper.AddScript("Start-Sleep -Milliseconds 500; Stop-P2PConnection -Id $($c.Id)")
            $clock = [Diagnostics.Stopwatch]::StartNew()
            [void] $stopper.BeginInvoke()
            $done = Wait-P2PConnection -Id $c.Id -State Stopped -TimeoutSec 10
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 2
            $done.State | Should -Be 'Stopped'
        } finally {
            $stopper.Runspace.Dispose()
            $stopper.Dispose()
        }
    }
}
