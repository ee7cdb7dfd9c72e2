using System;
using System.Collections.Generic;
using System.IO;
using System.Management.Automation;
using System.Net;
using RemoteItP2P.Internal;
using RemoteItP2P.Native;

namespace RemoteItP2P.Commands
{
    /// <summary>
    /// Opens a tunnel to a device: a local TCP port (LocalEndpoint) whose connections reach the device's
    /// service. Replaces connectd's -c/-f/-e command lines, Start-Sleep and Stop-Process.
    /// </summary>
    [Cmdlet(VerbsCommon.New, "P2PConnection", DefaultParameterSetName = CredentialSet)]
    [OutputType(typeof(P2PConnection))]
    public sealed class NewP2PConnectionCommand : P2PCmdlet
    {
        private const string CredentialSet = "Credential";
        private const string FileSet = "ProvisioningFile";

        /// <summary>The device's UID, e.g. 80:00:00:00:01:00:0A:C2.</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = CredentialSet)]
        [ValidateDeviceId]
        [Alias("UID", "RemoteAddress")]
        public string DeviceId { get; set; }

        /// <summary>The account (user name and password) allowed to reach the device.</summary>
        [Parameter(Mandatory = true, Position = 1, ParameterSetName = CredentialSet)]
        [Credential]
        [ValidateNotNull]
        public PSCredential Credential { get; set; }

        /// <summary>A connectd initiator provisioning file (the one with remote_address).</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = FileSet, ValueFromPipeline = true,
            ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "Path")]
        [ValidateNotNullOrEmpty]
        public string ProvisioningFile { get; set; }

        /// <summary>The local port; 0 (the default) picks a free one.</summary>
        [Parameter]
        [ValidateRange(0, 65535)]
        public int LocalPort { get; set; }

        /// <summary>The local address to listen on; 127.0.0.1 by default. Anything else warns.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string BindAddress { get; set; } = "127.0.0.1";

        /// <summary>Packet protection; ChaCha20Poly1305 (the default) is the only strong one.</summary>
        [Parameter(ParameterSetName = CredentialSet)]
        public P2PEncryption Encryption { get; set; } = P2PEncryption.ChaCha20Poly1305;

        /// <summary>A fixed per-stream window (connectd's max_depth); the default adapts to the network.</summary>
        [Parameter(ParameterSetName = CredentialSet)]
        [ValidateRange(1, 65535)]
        public int MaxOutstanding { get; set; }

        /// <summary>Re-establish the session by itself when it is lost (connectd's autoconnect 2).</summary>
        [Parameter(ParameterSetName = CredentialSet)]
        public SwitchParameter AutoReconnect { get; set; }

        /// <summary>host:port of the server; default the provisioning file's, then $env:P2P_SERVER.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string Server { get; set; }

        /// <summary>The server's public key (base64, from p2p-server init); default the provisioning file's, then
        /// $env:P2P_SERVER_KEY.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string ServerKey { get; set; }

        /// <summary>A name for the connection (defaults to the device UID).</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string Name { get; set; }

        /// <summary>How long to wait for the tunnel to come up (seconds).</summary>
        [Parameter]
        [ValidateRange(1, 86400)]
        public int TimeoutSec { get; set; } = 30;

        /// <summary>Return at once (State Connecting); Wait-P2PConnection waits later.</summary>
        [Parameter]
        public SwitchParameter NoWait { get; set; }

        private bool Bound(string name) => MyInvocation.BoundParameters.ContainsKey(name);

        protected override void ProcessRecord()
        {
            WarnAboutChoices();
            RefuseDuplicateName();
            ulong id = ParameterSetName == FileSet ? StartFromFile() : StartFromCredential();
            WriteNativeLog();
            P2PConnection connection = Refresh(id);
            if (NoWait || connection == null)
            {
                if (connection != null) WriteObject(connection);
                return;
            }
            string activity = "Connecting to " + connection.DeviceId + " on " + connection.LocalEndpoint;
            P2PConnection last = WaitFor(id, c => !(c.State == P2PConnectionState.Connecting || c.State == P2PConnectionState.Reconnecting && c.ConnectedAt == null),
                TimeoutSec, activity, out WaitOutcome outcome);
            switch (outcome)
            {
                case WaitOutcome.Done when last.State == P2PConnectionState.Connected || last.State == P2PConnectionState.Reconnecting:
                    WriteVerbose("Connected: " + last.Name + " listens on " + last.LocalEndpoint + " (" + last.Path + ")");
                    WriteObject(last);
                    return;
                case WaitOutcome.Cancelled:
                    StopQuietly(id);
                    return; // the pipeline is stopping: nothing more may be written
                case WaitOutcome.TimedOut:
                    StopQuietly(id);
                    Throw(new TimeoutException("The connection to " + last.DeviceId + " was not up within " + TimeoutSec +
                        " s (state " + last.State + (last.LastError != null ? ": " + last.LastError : string.Empty) +
                        "); it was stopped. Raise -TimeoutSec, or use -NoWait and Wait-P2PConnection."),
                        ErrorIds.Timeout, ErrorCategory.OperationTimeout, last);
                    return;
                default:
                    StopQuietly(id);
                    string kind = last?.LastErrorKind ?? "P2PFailed";
                    string message = last?.LastError ?? "The connection ended before it was up.";
                    Throw(new P2PConnectionException(kind, message, last), last);
                    return;
            }
        }

        private void Throw(Exception e, string id, ErrorCategory category, object target)
        {
            WriteNativeLog();
            ThrowTerminatingError(new ErrorRecord(e, id, category, target));
        }

        private void WarnAboutChoices()
        {
            if (!IPAddress.TryParse(BindAddress, out IPAddress address))
            {
                ThrowTerminatingError(ErrorIds.Make("P2PInvalidConfiguration", ErrorCategory.InvalidArgument,
                    "-BindAddress '" + BindAddress + "' is not an IP address (e.g. 127.0.0.1 or ::1).", BindAddress));
            }
            if (Bound(nameof(BindAddress)) && !IPAddress.IsLoopback(address))
            {
                WriteWarning("-BindAddress " + BindAddress + " makes the tunnel reachable from other machines, " +
                    "which then reach the device without a password. Use 127.0.0.1 unless that is intended.");
            }
            if (ParameterSetName == CredentialSet && Encryption != P2PEncryption.ChaCha20Poly1305)
            {
                WriteWarning("-Encryption " + Encryption + " is weak (kept for connectd compatibility): " +
                    "anyone on the path can read" + (Encryption == P2PEncryption.None ? "" : " or alter") +
                    " the traffic. Leave -Encryption out to use ChaCha20Poly1305.");
            }
        }

        private void RefuseDuplicateName()
        {
            if (string.IsNullOrEmpty(Name)) return;
            foreach (P2PConnection c in AllConnections())
            {
                if (c.IsActive && string.Equals(c.Name, Name, StringComparison.OrdinalIgnoreCase))
                {
                    ThrowTerminatingError(ErrorIds.Make(ErrorIds.NameInUse, ErrorCategory.ResourceExists,
                        "A P2P connection named '" + Name + "' is already open (Id " + c.Id + ", " + c.LocalEndpoint +
                        "). Choose another -Name or stop it first.", Name));
                }
            }
        }

        private ulong StartFromCredential()
        {
            var config = new Dictionary<string, object>
            {
                ["device_id"] = DeviceId,
                ["user"] = Credential.UserName,
                ["local_port"] = LocalPort,
                ["bind_address"] = BindAddress,
                ["encryption"] = Encryption.ToString(),
                ["autoconnect"] = AutoReconnect ? "reconnect" : "once",
            };
            if (Bound(nameof(Name))) config["name"] = Name;
            if (Bound(nameof(MaxOutstanding))) config["max_outstanding"] = MaxOutstanding;
            if (Bound(nameof(Server))) config["server"] = Server;
            if (Bound(nameof(ServerKey))) config["server_key"] = ServerKey;
            Dictionary<string, object> environment = HostEnvironment();
            if (environment.Count > 0) config["environment"] = environment;
            config["password"] = Credential.GetNetworkCredential().Password;
            byte[] bytes = NativeMethods.ToUtf8Z(Json.Write(config));
            config.Clear();
            try
            {
                return NativeMethods.SessionStart(bytes);
            }
            catch (P2PException e)
            {
                Throw(ServerErrors.InCmdletTerms(e, fromFile: false), DeviceId);
                return 0;
            }
            finally
            {
                // The password is in these bytes: do not leave it in memory longer than needed.
                Array.Clear(bytes, 0, bytes.Length);
            }
        }

        private ulong StartFromFile()
        {
            string path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(ProvisioningFile);
            if (!File.Exists(path))
            {
                ThrowTerminatingError(new ErrorRecord(new FileNotFoundException("The provisioning file '" + path + "' does not exist.", path),
                    ErrorIds.ProvisioningNotFound, ErrorCategory.ObjectNotFound, path));
            }
            var overrides = new Dictionary<string, object>();
            if (Bound(nameof(Name))) overrides["name"] = Name;
            if (Bound(nameof(LocalPort))) overrides["local_port"] = LocalPort;
            if (Bound(nameof(BindAddress))) overrides["bind_address"] = BindAddress;
            if (Bound(nameof(Server))) overrides["server"] = Server;
            if (Bound(nameof(ServerKey))) overrides["server_key"] = ServerKey;
            // Used only where neither the file nor -Server/-ServerKey give a value.
            Dictionary<string, object> environment = HostEnvironment();
            if (environment.Count > 0) overrides["environment"] = environment;
            try
            {
                return NativeMethods.SessionStartFile(path, overrides.Count > 0 ? Json.Write(overrides) : null);
            }
            catch (P2PException e) when (e.Code == P2PResultCode.Provisioning)
            {
                Throw(new P2PProvisioningException(path, e), path);
                return 0;
            }
            catch (P2PException e)
            {
                Throw(ServerErrors.InCmdletTerms(e, fromFile: true), path);
                return 0;
            }
        }
    }
}
