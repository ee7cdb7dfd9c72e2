# Stop-P2PConnection as a PowerShell user types it: a job's output piped to Stop (another
# process's connection, whose Id 1 means a different connection here), and Stop-P2PConnection 1 as
# Stop-Job 1. Against a real lab (Support/P2PLab.psm1).

BeforeAll {
    . (Join-Path $PSScriptRoot 'Support/Common.ps1')

    # The script block of the job in the issue: a connection made in another process (Start-Job runs one).
    $script:RemoteOne = {
        param($ModulePath, $Server, $ServerKey, $DeviceId, $User, $Password)
        Import-Module $ModulePath
        $cred = [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
        New-P2PConnection $DeviceId $cred -Server $Server -ServerKey $ServerKey -Name remote-one
    }
    $script:JobArgs = @($ModulePath, $Lab.Server, $Lab.ServerKey, $Lab.DeviceId, $Lab.User, $Lab.Password)
}

AfterAll { Stop-P2PTestLab }

Describe 'Stop-P2PConnection and connections of another process (item 2)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'Start-Job { New-P2PConnection ... -Name remote-one } | Receive-Job -Wait | Stop-P2PConnection -PassThru refuses, and closes no local connection' {
        # Local connections with the Ids the job's connection could have (it is the first in its process).
        $local = 1..2 | ForEach-Object { New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name "local$_" }
        $job = Start-Job $RemoteOne -ArgumentList $JobArgs
        try {
            $stopped = $job | Receive-Job -Wait | Stop-P2PConnection -PassThru -ErrorVariable e -ErrorAction SilentlyContinue
        } finally { $job | Remove-Job -Force }
        $stopped | Should -BeNullOrEmpty
        @($e).Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -Be 'P2PConnectionFromOtherProcess,RemoteItP2P.Commands.StopP2PConnectionCommand'
        $e[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $e[0].Exception.Message | Should -Match 'remote-one'
        $e[0].Exception.Message | Should -Match 'process'
        foreach ($c in $local) {
            (Get-P2PConnection -Id $c.Id).State | Should -Be 'Connected'
            Test-TcpPortOpen $c.LocalPort | Should -BeTrue
        }
    }

    It 'connections carry an InstanceId unique across processes beside the short Id' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common
        $c.InstanceId | Should -BeOfType [guid]
        $c.InstanceId | Should -Not -Be ([guid]::Empty)
        $c.ProcessId | Should -Be $PID
        $c.IsFromThisProcess | Should -BeTrue
        (Get-P2PConnection -Id $c.Id).InstanceId | Should -Be $c.InstanceId
        # The same Id in another process has another InstanceId (the first half names the process).
        $other = [RemoteItP2P.P2PConnection]@{ Id = $c.Id; InstanceId = [guid]::NewGuid(); ProcessId = 1 }
        $other.IsFromThisProcess | Should -BeFalse
        Assert-StopRefusesOtherProcess $other $c
    }
}

Describe 'Stop-P2PConnection by Id, as Stop-Job 1 (item 12)' {
    AfterEach { Get-P2PConnection | Stop-P2PConnection }

    It 'Stop-P2PConnection <Id> binds the number positionally' {
        $c = New-P2PConnection $Lab.DeviceId $Lab.Credential @Common -Name byid
        $final = & ([scriptblock]::Create("Stop-P2PConnection $($c.Id) -PassThru"))
        $final.Id | Should -Be $c.Id
        $final.State | Should -Be 'Stopped'
        Get-P2PConnection -Name byid -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'an unknown number is a non-terminating not-found error' {
        Stop-P2PConnection 987654 -ErrorVariable e -ErrorAction SilentlyContinue
        $e[0].FullyQualifiedErrorId | Should -BeLike 'P2PConnectionNotFound,*'
    }
}
