# The text of the cmdlets' help. cmdlets/help/New-MamlHelp.ps1 combines it with the compiled cmdlets'
# syntax into en-US/RemoteItP2P.dll-Help.xml (MAML). Every cmdlet has examples; New-P2PConnection's show
# the replacement of the seed's three options (connectd -c, p2p.ps1, p2p-file.ps1 + Stop-Process).
@{
    'New-P2PConnection'   = @{
        Synopsis    = 'Opens a peer-to-peer tunnel to a device and returns it once it is up.'
        Description = @(
            'New-P2PConnection opens a local TCP port (LocalEndpoint) whose connections reach a service on a device, through a RemoteItP2P server. It returns a P2PConnection object once the tunnel is up: no Start-Sleep, no process id to find, no credentials on a command line.'
            'The credential is a PSCredential (there is no plaintext password parameter), or comes from a connectd provisioning file (-ProvisioningFile). The server and its public key come from -Server and -ServerKey, the file, or the environment variables P2P_SERVER and P2P_SERVER_KEY (read by the cmdlet, so $env:P2P_SERVER set in PowerShell counts on every OS). With none of them the error (P2PInvalidConfiguration) says which is missing.'
            'The cmdlet waits up to -TimeoutSec seconds, showing progress; Ctrl+C cancels the wait and closes the half-open tunnel. With -NoWait it returns at once (State Connecting); Wait-P2PConnection waits later.'
            'Each input that fails (a file from the pipeline, a device) is a non-terminating error, so the other inputs still connect and -ErrorAction, -ErrorVariable and $? work as everywhere else; its TargetObject is the device UID (or the file when the device is unknown) and ErrorDetails.RecommendedAction says what to do. Every failure has a stable FullyQualifiedErrorId: P2PAuthenticationFailed (AuthenticationError), P2PDeviceNotFound (ObjectNotFound), P2PDeviceOffline and P2PServerUnreachable (ConnectionError), P2PPortInUse (ResourceUnavailable), P2PProvisioningInvalid (ParserError, with the line), P2PConnectionTimeout (OperationTimeout), P2PInvalidConfiguration (InvalidArgument), P2PNameInUse (ResourceExists). A tunnel that does not come up is always closed, whatever ended the command (an error, Ctrl+C, a prompt answered Halt).'
            'Names are unique among the open connections of the process, checked and taken atomically (also from ForEach-Object -Parallel). Without -Name a connection is named after its device UID (or the file''s name), with #2, #3... appended when that is taken. -Debug writes the native library''s log as debug lines, without prompting.'
        )
        Parameters  = @{
            DeviceId         = 'The UID of the device (service) to reach: eight hex bytes separated by colons, like 80:00:00:00:01:00:0A:C2. A path given here instead (New-P2PConnection ./SSH-Pi.txt) is read as -ProvisioningFile. Tab completion offers the UIDs of the open connections.'
            Credential       = 'The account allowed to reach the device. Get-Credential asks for it without echo. Required with a device UID: when left out, PowerShell asks for it (an error in a non-interactive session). It is not marked mandatory only so that a path can be the sole positional argument.'
            ProvisioningFile = 'A connectd initiator provisioning file (the one with remote_address). Accepts pipeline input, e.g. from Get-ChildItem.'
            LocalPort        = 'The local TCP port. 0 (the default) picks a free port; LocalEndpoint on the result says which.'
            BindAddress      = 'The local address to listen on. 127.0.0.1 by default; any other address makes the tunnel reachable from other machines and warns.'
            Encryption       = 'Packet protection. ChaCha20Poly1305 (the default) is authenticated encryption; None, RC4 and XXTEA exist only for connectd compatibility and warn.'
            MaxOutstanding   = 'Unacknowledged packets the tunnel may always keep in flight (connectd''s MAXOUTSTANDING / max_depth): a floor under the window, which still adapts to the network.'
            AutoReconnect    = 'Re-establish the session by itself when it is lost (connectd''s autoconnect 2). The local port stays open meanwhile; State is Reconnecting and ReconnectAttempts counts the attempts made (not only the successful ones). A device that dies silently shows as State Degraded after 5 seconds without a packet from it, and the session is given up after the driver''s peer timeout (about 20 seconds of silence).'
            Server           = 'host:port of the RemoteItP2P server, or several nodes of one service separated by commas (tried in turn). Default: the file''s server key, then $env:P2P_SERVER.'
            ServerKey        = 'The server''s public key (base64, printed by p2p-server init). Default: the file''s server_key, then $env:P2P_SERVER_KEY.'
            Name             = 'A name for the connection: unique among the open connections (P2PNameInUse otherwise). Default: the device UID, or the file''s name, with #2, #3... appended when taken. Bound by property name from the pipeline, so a delay-bind script block works: Get-ChildItem *.txt | New-P2PConnection -Name { $_.BaseName }.'
            TimeoutSec       = 'How long to wait for the tunnel to come up, in seconds (default 30). On time-out the tunnel is closed and P2PConnectionTimeout is thrown.'
            NoWait           = 'Return at once, with State Connecting.'
            DeviceKey        = 'The device''s key, pinned before the first connection so that not even that one takes the server''s word for it: its fingerprint (SHA256:..., as connectd --fingerprint -f TARGET-FILE prints it on the device) or its base64 public key. Wins over the pin kept in known_devices, and is pinned there once the device proved it, so later connections need not repeat it. Another key is refused with P2PDeviceKeyMismatch. Without it (or a pin), an Encryption ChaCha20Poly1305 connection refuses the device with P2PDeviceKeyUnknown.'
            AcceptDeviceKey  = 'After P2PDeviceKeyMismatch (a re-installed device): the new fingerprint, once its owner confirmed it on the device. It is the exception''s PresentedFingerprint; the device must prove that key, and it is then pinned.'
            TrustFirstUse    = 'For a device that is neither pinned nor given with -DeviceKey: trust the key the server introduces, and pin it (ssh''s accept-new). That first connection then trusts the server, which could intercept it; a device without any key gets the legacy handshake, which the server can read. Without it such a device fails with P2PDeviceKeyUnknown (SecurityError, PresentedFingerprint = what the server introduced).'
        }
        # Shown as "Default value" where the cmdlet's own default (read from the compiled cmdlet) needs words.
        Defaults    = @{ LocalPort = '0 (a free port)'; MaxOutstanding = 'None (adapts to the network)' }
        Inputs      = @(@{ Type = 'System.String'; Text = 'A provisioning file path (also the FullName of Get-ChildItem output).' })
        Outputs     = @(@{ Type = 'RemoteItP2P.P2PConnection'; Text = 'The open connection. Its LocalEndpoint is what ssh or a browser connects to.' })
        Examples    = @(
            @{
                Title   = 'Option 1 of the seed: connectd -c on the command line'
                Code    = @'
# Before: credentials Base64-encoded on connectd's command line (visible to every process), in the foreground:
#   connectd.exe -c BASE_64_USER BASE_64_PASSWORD 80:00:00:00:01:00:0A:C2 T33000 3 127.0.0.1 12
# On the device, once: connectd --fingerprint -f TARGET-FILE  ->  SHA256:... (the device's key)
$cred = Get-Credential me@example.com
$c = New-P2PConnection -DeviceId 80:00:00:00:01:00:0A:C2 -Credential $cred -LocalPort 33000 -BindAddress 127.0.0.1 -MaxOutstanding 12 -Server p2p.example.com:5980 -ServerKey $key -DeviceKey $deviceFingerprint
Start-Process "http://$($c.LocalEndpoint)/"
'@
                Remarks = 'The same tunnel, with the password read without echo and never on a command line. ENCRYPTION_MODE 3 is the default (-Encryption ChaCha20Poly1305); MAXOUTSTANDING is -MaxOutstanding. -DeviceKey is needed once per device (then pinned): the session is end to end only with a key the server did not give.'
            }
            @{
                Title   = 'Option 2 of the seed: p2p.ps1 (Start-Process, Start-Sleep 10, Stop-Process <pid>)'
                Code    = @'
# Before: .\p2p.ps1 "username" "password"  ->  Start-Process connectd, Start-Sleep 10, then "Stop-Process 6044"
$env:P2P_SERVER = 'p2p.example.com:5980'; $env:P2P_SERVER_KEY = $key
$c = New-P2PConnection 80:00:00:00:01:00:0A:C2 (Get-Credential) -Name pi-ssh
ssh -p $c.LocalPort pi@127.0.0.1
$c | Stop-P2PConnection
'@
                Remarks = 'New-P2PConnection returns when the tunnel is up (or writes an error saying why it is not), instead of sleeping 10 seconds and hoping. The object replaces the process id: Stop-P2PConnection closes exactly this tunnel, even with several open.'
            }
            @{
                Title   = 'Option 3 of the seed: p2p-file.ps1 with a provisioning file'
                Code    = @'
# Before: .\p2p-file.ps1 SSH-Pi.txt  ->  connectd -f SSH-Pi.txt in the background, then "Stop-Process 11376"
$c = New-P2PConnection -ProvisioningFile .\SSH-Pi.txt
Get-ChildItem .\tunnels\*.txt | New-P2PConnection      # one connection per file
Get-P2PConnection | Stop-P2PConnection
'@
                Remarks = 'The file is read by the same parser as connectd -f; an error names the file, line and key. -Name, -LocalPort, -BindAddress, -Server and -ServerKey override the file''s values.'
            }
            @{
                Title   = 'Start without waiting, wait later'
                Code    = @'
$c = New-P2PConnection 80:00:00:00:01:00:0A:C2 $cred -NoWait
# ... other work ...
$c | Wait-P2PConnection -TimeoutSec 20
'@
                Remarks = 'Wait-P2PConnection returns the connection once it is Connected.'
            }
            @{
                Title   = 'Handle a wrong password'
                Code    = @'
try { New-P2PConnection 80:00:00:00:01:00:0A:C2 $cred -ErrorAction Stop }
catch { if ($_.FullyQualifiedErrorId -like 'P2PAuthenticationFailed,*') { 'wrong user name or password' } else { throw } }
'@
                Remarks = 'Every failure has a stable FullyQualifiedErrorId and category.'
            }
        )
        Notes       = 'Connections belong to the PowerShell process: every runspace sees them. They are closed by Stop-P2PConnection, by Remove-Module RemoteItP2P, and when the process exits. -Verbose shows the native library''s log, -Debug more of it.'
        Links       = @('Get-P2PConnection', 'Stop-P2PConnection', 'Wait-P2PConnection', 'Get-P2PProvisioning', 'about_RemoteItP2P')
    }
    'Get-P2PConnection'   = @{
        Synopsis    = 'Lists the open P2P connections with live figures.'
        Description = @(
            'Get-P2PConnection returns the connections of this process (from every runspace), with state, path (Direct, Relayed, PortMapped) and, for a direct path, its IP version (PathFamily: IPv4 or IPv6), round-trip time and bytes each way as they are now. Each call reads fresh figures.'
            'Refresh interval: a running connection''s figures are refreshed every 0.25 seconds, so BytesSent and BytesReceived are never more than 0.5 seconds behind the traffic (0.25 s, plus room for a busy machine); RttMs, PacketsLost and StreamsOpen follow within the same time. Once a connection has stopped its figures are exact: Stop-P2PConnection -PassThru returns the exact totals.'
            'BytesSent counts the bytes local TCP clients sent to the device (each byte once, however often the network made it be sent again); BytesReceived counts the bytes the device sent to them.'
            'State is Connecting, Connected, Degraded, Reconnecting (-AutoReconnect), Stopped or Failed. Degraded means the session is up but nothing was heard from the device for 5 seconds (PeerSilentMs is 5000 or more): connections may stall. A live device is heard at least every 2 seconds (keepalives), so 5 seconds is a device or path that went away, not a quiet one. Degraded goes back to Connected as soon as the device is heard again, or ends as Reconnecting (-AutoReconnect) or Failed when the session times out after about 20 seconds of silence. The local port stays open while Degraded.'
            'PeerSilentMs is the time since the last packet from the device while the session is up (Connected or Degraded), refreshed every 0.25 seconds; it is empty while no session is up. ReconnectAttempts counts the new sessions tried after a lost one, successful or not.'
            'Aead is the cipher an Encryption ChaCha20Poly1305 (mode 3) connection agreed with the device: AES-256-GCM when both ends have AES instructions, otherwise ChaCha20-Poly1305 (also with devices older than the negotiation). It is empty in the weak modes and until the first session is up.'
            'Connections that ended on their own (State Failed or Stopped) stay listed, with LastError, until Stop-P2PConnection removes them.'
        )
        Parameters  = @{
            Name     = 'Names to match; wildcards are allowed. A name without wildcards that matches nothing is a non-terminating P2PConnectionNotFound error. Tab completion offers the open connections'' names.'
            Id       = 'The Id of a connection (unique in the process, never reused). Tab completion offers the open ones.'
            DeviceId = 'Device UIDs to match; wildcards are allowed.'
        }
        Outputs     = @(@{ Type = 'RemoteItP2P.P2PConnection'; Text = 'One object per connection.' })
        Examples    = @(
            @{ Title = 'The connection table'; Code = 'Get-P2PConnection'; Remarks = 'Id, Name, DeviceId, LocalEndpoint, State, Path, RTT and bytes each way.' }
            @{ Title = 'Every detail of one connection'; Code = 'Get-P2PConnection -Name pi-ssh | Format-List'; Remarks = 'Includes the peer endpoint, encryption, streams open, start time and last error.' }
            @{ Title = 'Connections to one device'; Code = 'Get-P2PConnection -DeviceId 80:00:00:00:01:*'; Remarks = 'Wildcards match device UIDs too.' }
        )
        Links       = @('New-P2PConnection', 'Stop-P2PConnection')
    }
    'Stop-P2PConnection'  = @{
        Synopsis    = 'Closes P2P connections; their local ports are closed when it returns.'
        Description = @(
            'Stop-P2PConnection closes each connection''s local port and streams, tells the device, and removes it from Get-P2PConnection. It returns once the port is closed (or writes P2PStopFailed after -TimeoutSec). Ctrl+C ends the wait at once: the stop goes on in the background, and the connection stays listed (Stopped) until Stop-P2PConnection runs again.'
            'Stopping a connection that is already stopped (twice, or from another runspace) does nothing and is not an error. -WhatIf shows what would be stopped and stops nothing.'
        )
        Parameters  = @{
            InputObject = 'Connections from New-P2PConnection or Get-P2PConnection, usually from the pipeline; or a number, the Id (Stop-P2PConnection 1, as Stop-Job 1). A connection made by another process (a job''s output, a deserialized object) is refused with P2PConnectionFromOtherProcess: its Id names a different connection here, and its InstanceId says so.'
            Id          = 'Ids of connections to stop.'
            Name        = 'Names of connections to stop; wildcards are allowed.'
            TimeoutSec  = 'How long to wait for each port to close, in seconds (default 10).'
            PassThru    = 'Output each stopped connection (State Stopped, or Failed if it had failed), with the exact totals of BytesSent and BytesReceived.'
        }
        Inputs      = @(@{ Type = 'RemoteItP2P.P2PConnection'; Text = 'Connections to stop.' })
        Outputs     = @(@{ Type = 'RemoteItP2P.P2PConnection'; Text = 'With -PassThru only.' })
        Examples    = @(
            @{ Title = 'Stop everything'; Code = 'Get-P2PConnection | Stop-P2PConnection'; Remarks = 'Replaces Stop-Process <pid> of p2p.ps1: no process id, no guessing which connectd is which.' }
            @{ Title = 'See what would be stopped'; Code = 'Get-P2PConnection -Name test-* | Stop-P2PConnection -WhatIf'; Remarks = 'Nothing is stopped.' }
            @{ Title = 'Stop one and keep its final figures'; Code = '$final = Stop-P2PConnection -Name pi-ssh -PassThru; $final.BytesReceived'; Remarks = '-PassThru returns the connection as it was when it closed, with the exact byte totals.' }
        )
        Links       = @('Get-P2PConnection', 'New-P2PConnection')
    }
    'Wait-P2PConnection'  = @{
        Synopsis    = 'Waits until P2P connections reach a state, and outputs them.'
        Description = @(
            'Wait-P2PConnection waits for each connection to reach -State (Connected by default), showing progress, and outputs it. A connection that ends in another state is a non-terminating error with its last error; running out of time is P2PWaitTimeout (OperationTimeout). The wait ends as soon as the state changes, and Ctrl+C stops it at once.'
            'A Degraded connection (up, but its device silent for 5 seconds) is not Connected: waiting for Connected goes on until the device is heard again, or the session ends. Wait for -State Degraded to learn that a device went silent.'
        )
        Parameters  = @{
            InputObject = 'Connections to wait for, usually from the pipeline; or a number, the Id. A connection made by another process is refused (P2PConnectionFromOtherProcess).'
            Id          = 'Ids of connections to wait for.'
            Name        = 'Names of connections to wait for; wildcards are allowed.'
            State       = 'The state to wait for: Connecting, Connected (default), Degraded, Reconnecting, Stopped or Failed. Stopped is also satisfied by Failed (the connection ended); Connected is not satisfied by Degraded.'
            TimeoutSec  = 'How long to wait for each connection, in seconds; -1 (the default) waits until Ctrl+C.'
        }
        Inputs      = @(@{ Type = 'RemoteItP2P.P2PConnection'; Text = 'Connections to wait for.' })
        Outputs     = @(@{ Type = 'RemoteItP2P.P2PConnection'; Text = 'Each connection once it is in the state.' })
        Examples    = @(
            @{ Title = 'Start several, then wait for all'; Code = "`$all = 1..3 | ForEach-Object { New-P2PConnection 80:00:00:00:01:00:0A:C2 `$cred -Name `"web`$_`" -NoWait }`n`$all | Wait-P2PConnection -TimeoutSec 30"; Remarks = 'The tunnels come up in parallel.' }
            @{ Title = 'Wait until a connection ends'; Code = 'Wait-P2PConnection -Name pi-ssh -State Stopped'; Remarks = 'Returns when it stopped or failed (for example at the end of its lifetime).' }
        )
        Links       = @('New-P2PConnection', 'Get-P2PConnection')
    }
    'Test-P2PNetwork'     = @{
        Synopsis    = 'Runs the network self-test (connectd -n) and reports what it means for direct connections.'
        Description = @(
            'Test-P2PNetwork checks DNS, TCP and UDP reachability of the server, classifies the NAT''s mapping and filtering behaviour from the server''s probe ports, looks for NAT-PMP and UPnP routers and runs the ciphers'' known-answer tests. Every probe has a time-out, so it finishes within seconds even when the server is down; the report then says what failed (Compatible False, Problems). Ctrl+C abandons the test at once.'
            'With the server''s key (-ServerKey or $env:P2P_SERVER_KEY) it checks the key over the control channel and asks the server which UDP ports to probe, so a server on any ports is tested on its own ports (Control.ProbeAddrsFrom says "server"). Without a key it probes the default ports (5959, 5960, and 5961 on a second address) and Control.Error says so. $env:P2P_PROBE_ADDR1 to 3 override single addresses.'
            'The Report property holds the text connectd -n prints.'
            'Ipv6.GlobalAddresses lists this host''s global IPv6 addresses (the IPv6 candidates a connection offers its peer; empty without IPv6), as the report''s "IPv6:" line does: with one, peers that have IPv6 too are reached directly over IPv6 whatever the IPv4 NATs do. Tcp.SourceIp is the address this host reached the server from: an IPv6 one on an IPv6-only network, where Nat.PublicIp is IPv6 too and Nat.BehindNat False (IPv6 is not translated).'
        )
        Parameters  = @{
            Server     = 'host:port of the server. Default: $env:P2P_SERVER.'
            ServerKey  = 'The server''s public key (base64, printed by p2p-server init). Default: $env:P2P_SERVER_KEY. With it the test checks the key and probes the UDP ports the server names; a wrong key makes the report not compatible, as it would make every connection fail.'
            TimeoutSec = 'How long one resolve or TCP connect may take, in seconds (default 5).'
        }
        Outputs     = @(@{ Type = 'RemoteItP2P.P2PNetworkTest'; Text = 'The self-test report.' })
        Examples    = @(
            @{ Title = 'Check this network'; Code = 'Test-P2PNetwork -Server p2p.example.com:5980 -ServerKey $key'; Remarks = 'Shows the verdict, whether a direct path is likely, and the problems found; the UDP probes go to the ports the server names.' }
            @{ Title = 'The full report'; Code = '(Test-P2PNetwork).Report'; Remarks = 'The text connectd -n prints, with $env:P2P_SERVER as the server.' }
            @{ Title = 'Does this host have IPv6?'; Code = '(Test-P2PNetwork).Ipv6.GlobalAddresses'; Remarks = 'The global IPv6 addresses a connection offers as direct-path candidates; none means direct paths use IPv4 only.' }
        )
        Links       = @('New-P2PConnection')
    }
    'Get-P2PProvisioning' = @{
        Synopsis    = 'Reads connectd provisioning files and shows what they configure, without their secrets.'
        Description = @(
            'Get-P2PProvisioning parses provisioning files with the same parser as connectd -f and New-P2PConnection -ProvisioningFile. It returns an object per file (Kind Initiator or Target) and writes the parser''s warnings (unknown keys, likely typos) as warnings.'
            'A file that is refused is a non-terminating P2PProvisioningInvalid error (ParserError) whose exception carries File, Line and Key; the message reads FILE:LINE: key ''K'': problem. Passwords and secrets are never shown: HasPassword and HasAuthHash say which credential a file holds.'
        )
        Parameters  = @{
            Path = 'Provisioning files; wildcards are allowed, and pipeline input (Get-ChildItem) is accepted.'
        }
        Inputs      = @(@{ Type = 'System.String'; Text = 'File paths.' })
        Outputs     = @(@{ Type = 'RemoteItP2P.P2PProvisioning'; Text = 'One object per file.' })
        Examples    = @(
            @{ Title = 'Check a file before using it'; Code = 'Get-P2PProvisioning .\SSH-Pi.txt'; Remarks = 'Shows the device, user, port and which credential the file holds.' }
            @{ Title = 'Find broken files'; Code = "Get-ChildItem .\tunnels\*.txt | Get-P2PProvisioning -ErrorVariable bad -ErrorAction SilentlyContinue | Out-Null`n`$bad | ForEach-Object { `"`$(`$_.Exception.File) line `$(`$_.Exception.Line): `$(`$_.Exception.Message)`" }"; Remarks = 'Each error names the file and line.' }
        )
        Links       = @('New-P2PConnection')
    }
}
