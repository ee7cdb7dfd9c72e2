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

        /// <summary>The device's UID, e.g. 80:00:00:00:01:00:0A:C2. A path here (./SSH-Pi.txt, as positional
        /// first argument) is taken as -ProvisioningFile.</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = CredentialSet)]
        [ValidateDeviceId(AllowPath = true)]
        [Alias("UID", "RemoteAddress")]
        [ArgumentCompleter(typeof(DeviceIdCompleter))]
        public string? DeviceId { get; set; }

        /// <summary>The account (user name and password) allowed to reach the device. Required with a UID: asked
        /// for when left out (not Mandatory only so that a path can be the sole positional argument).</summary>
        [Parameter(Position = 1, ParameterSetName = CredentialSet)]
        [Credential]
        [ValidateNotNull]
        public PSCredential? Credential { get; set; }

        /// <summary>A connectd initiator provisioning file (the one with remote_address).</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = FileSet, ValueFromPipeline = true,
            ValueFromPipelineByPropertyName = true)]
        [Alias("FullName", "Path")]
        [ProvisioningFileInput]
        [ValidateNotNullOrEmpty]
        public string? ProvisioningFile { get; set; }

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

        /// <summary>connectd's max_depth: packets always allowed in flight (a floor; the window still adapts to the network).</summary>
        [Parameter(ParameterSetName = CredentialSet)]
        [ValidateRange(1, 65535)]
        public int MaxOutstanding { get; set; }

        /// <summary>Re-establish the session by itself when it is lost (connectd's autoconnect 2).</summary>
        [Parameter(ParameterSetName = CredentialSet)]
        public SwitchParameter AutoReconnect { get; set; }

        /// <summary>host:port of the server; default the provisioning file's, then $env:P2P_SERVER.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Server { get; set; }

        /// <summary>The server's public key (base64, from p2p-server init); default the provisioning file's, then
        /// $env:P2P_SERVER_KEY.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? ServerKey { get; set; }

        /// <summary>A name for the connection (defaults to the device UID, or the file's name; "#2", "#3"...
        /// appended when that is taken). Accepts a delay-bind script block: -Name { $_.BaseName }.</summary>
        [Parameter(ValueFromPipelineByPropertyName = true)]
        [AllowNull]
        [AllowEmptyString]
        public string? Name
        {
            get => _name;
            set => _name = string.IsNullOrEmpty(value) ? null : value;
        }

        private string? _name;

        /// <summary>The device's key, pinned before the first connection so that not even that one takes the
        /// server's word for it: its fingerprint (SHA256:..., as 'connectd --fingerprint -f TARGET-FILE'
        /// prints it on the device) or its base64 public key. Wins over the pin in known_devices.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? DeviceKey { get; set; }

        /// <summary>After a P2PDeviceKeyMismatch whose PresentedFingerprint the device's owner confirmed on the
        /// device (a re-installation): that fingerprint, accepted and pinned once the device proves it.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? AcceptDeviceKey { get; set; }

        /// <summary>For a device that is neither pinned nor given with -DeviceKey: trust the key the server
        /// introduces and pin it (ssh's accept-new), so this first connection trusts the server, which could
        /// intercept it. Without it such a device fails with P2PDeviceKeyUnknown.</summary>
        [Parameter]
        public SwitchParameter TrustFirstUse { get; set; }

        /// <summary>How long to wait for the tunnel to come up (seconds).</summary>
        [Parameter]
        [ValidateRange(1, 86400)]
        public int TimeoutSec { get; set; } = 30;

        /// <summary>Return at once (State Connecting); Wait-P2PConnection waits later.</summary>
        [Parameter]
        public SwitchParameter NoWait { get; set; }

        private bool Bound(string name) => MyInvocation.BoundParameters.ContainsKey(name);

        /// <summary>Held while a name is chosen and its session started, in every runspace of the process: two
        /// New-P2PConnection -Name same at once (ForEach-Object -Parallel) cannot both get it.</summary>
        private static readonly object NameGate = new object();

        /// <summary>The provisioning file to use: -ProvisioningFile, or a path given where the UID goes.</summary>
        private string? _file;

        /// <summary>What the errors of this item name: the device UID once known, else the file.</summary>
        private object? _target;

        protected override void ProcessRecord()
        {
            ulong id = 0;
            bool handedOver = false;
            _file = null;
            _target = null;
            try
            {
                ErrorRecord? refused = CheckInput();
                if (refused != null)
                {
                    WriteError(refused);
                    return;
                }
                WarnAboutChoices();
                lock (NameGate)
                {
                    refused = ChooseName(out string? name);
                    if (refused == null) refused = _file != null ? StartFromFile(name, out id) : StartFromCredential(name, out id);
                }
                if (refused != null)
                {
                    WriteNativeLog();
                    WriteError(refused);
                    return;
                }
                WriteNativeLog();
                P2PConnection? connection = Refresh(id);
                if (connection == null) return;
                _target = connection.DeviceId ?? _target;
                if (NoWait)
                {
                    handedOver = true;
                    WriteObject(connection);
                    return;
                }
                string activity = "Connecting to " + connection.DeviceId + " on " + connection.LocalEndpoint;
                P2PConnection? last = WaitFor(id, c => !(c.State == P2PConnectionState.Connecting || c.State == P2PConnectionState.Reconnecting && c.ConnectedAt == null),
                    TimeoutSec, activity, out WaitOutcome outcome);
                switch (outcome)
                {
                    case WaitOutcome.Done when last != null && (last.IsUp || last.State == P2PConnectionState.Reconnecting):
                        Verbose("Connected: " + last.Name + " listens on " + last.LocalEndpoint + " (" + last.Path + ")");
                        handedOver = true;
                        WriteObject(last);
                        return;
                    case WaitOutcome.Cancelled:
                        return; // the pipeline is stopping: nothing more may be written (finally closes it)
                    case WaitOutcome.TimedOut when last != null:
                        StopQuietly(id);
                        WriteNativeLog();
                        WriteError(ErrorIds.Record(new TimeoutException("The connection to " + last.DeviceId + " was not up within " + TimeoutSec +
                            " s (state " + last.State + (last.LastError != null ? ": " + last.LastError : string.Empty) +
                            "); it was stopped. Raise -TimeoutSec, or use -NoWait and Wait-P2PConnection."),
                            ErrorIds.Timeout, ErrorCategory.OperationTimeout, _target));
                        return;
                    default:
                        StopQuietly(id);
                        string kind = last?.LastErrorKind ?? "P2PFailed";
                        string message = last?.LastError ?? "The connection ended before it was up.";
                        Report(new P2PConnectionException(kind, message, last), _target);
                        return;
                }
            }
            finally
            {
                // Whatever ended this item (an error, Ctrl+C, a prompt answered Halt): a tunnel not handed to
                // the caller must not stay open.
                if (id != 0 && !handedOver) StopQuietly(id);
            }
        }

        /// <summary>Per-item checks; an ErrorRecord for this item, or null.</summary>
        private ErrorRecord? CheckInput()
        {
            if (!IPAddress.TryParse(BindAddress, out _))
            {
                return ErrorIds.Make("P2PInvalidConfiguration", ErrorCategory.InvalidArgument,
                    "-BindAddress '" + BindAddress + "' is not an IP address (e.g. 127.0.0.1 or ::1).", BindAddress);
            }
            string? given = ParameterSetName == FileSet ? ProvisioningFile : null;
            if (given == null && !ValidateDeviceIdAttribute.IsDeviceId(DeviceId))
            {
                // A path where the UID goes (New-P2PConnection ./SSH-Pi.txt): the file parameter set's meaning.
                if (Credential != null)
                {
                    return ErrorIds.Make("P2PInvalidConfiguration", ErrorCategory.InvalidArgument,
                        "'" + DeviceId + "' is not a device UID (eight hex bytes separated by colons, like 80:00:00:00:01:00:0A:C2). " +
                        "A provisioning file takes no -Credential: New-P2PConnection -ProvisioningFile '" + DeviceId + "'.", DeviceId);
                }
                foreach (string only in new[] { nameof(Encryption), nameof(MaxOutstanding), nameof(AutoReconnect) })
                {
                    if (Bound(only))
                    {
                        return ErrorIds.Make("P2PInvalidConfiguration", ErrorCategory.InvalidArgument,
                            "-" + only + " goes with a device UID; a provisioning file ('" + DeviceId + "') has its own setting.", DeviceId);
                    }
                }
                given = DeviceId;
            }
            if (given != null)
            {
                _file = SessionState.Path.GetUnresolvedProviderPathFromPSPath(given);
                _target = _file;
                if (!File.Exists(_file))
                {
                    return ErrorIds.Record(new FileNotFoundException("The provisioning file '" + _file + "' does not exist.", _file),
                        ErrorIds.ProvisioningNotFound, ErrorCategory.ObjectNotFound, _file);
                }
                return null;
            }
            _target = DeviceId;
            if (Credential == null && !NonInteractive)
            {
                try
                {
                    Credential = Host.UI.PromptForCredential("New-P2PConnection", "The account allowed to reach " + DeviceId + ".", string.Empty, string.Empty);
                }
                catch (Exception e) when (!(e is PipelineStoppedException))
                {
                    // A non-interactive host cannot ask.
                }
            }
            if (Credential == null)
            {
                return ErrorIds.Make("P2PInvalidConfiguration", ErrorCategory.InvalidArgument,
                    "-Credential is required with a device UID: New-P2PConnection " + DeviceId + " (Get-Credential).", DeviceId);
            }
            return null;
        }

        /// <summary>pwsh -NonInteractive: no prompt (the console host would print one, then fail).</summary>
        private static bool NonInteractive
        {
            get
            {
                foreach (string a in Environment.GetCommandLineArgs())
                {
                    if (a.StartsWith("-noni", StringComparison.OrdinalIgnoreCase) || a.StartsWith("/noni", StringComparison.OrdinalIgnoreCase)) return true;
                }
                return false;
            }
        }

        private void WarnAboutChoices()
        {
            IPAddress address = IPAddress.Parse(BindAddress);
            if (Bound(nameof(BindAddress)) && !IPAddress.IsLoopback(address))
            {
                WriteWarning("-BindAddress " + BindAddress + " makes the tunnel reachable from other machines, " +
                    "which then reach the device without a password. Use 127.0.0.1 unless that is intended.");
            }
            if (_file == null && Encryption != P2PEncryption.ChaCha20Poly1305)
            {
                WriteWarning("-Encryption " + Encryption + " is weak (kept for connectd compatibility): " +
                    "anyone on the path can read" + (Encryption == P2PEncryption.None ? "" : " or alter") +
                    " the traffic. Leave -Encryption out to use ChaCha20Poly1305.");
            }
        }

        /// <summary>The name to give: -Name when free (else P2PNameInUse), or the default (the UID, or the
        /// file's name) with "#2", "#3"... appended when an open connection has it. Runs under NameGate.</summary>
        private ErrorRecord? ChooseName(out string? name)
        {
            var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            P2PConnection? holder = null;
            foreach (P2PConnection c in AllConnections())
            {
                if (!c.IsActive || c.Name == null) continue;
                taken.Add(c.Name);
                if (Name != null && string.Equals(c.Name, Name, StringComparison.OrdinalIgnoreCase)) holder = c;
            }
            if (Name != null)
            {
                name = Name;
                if (holder == null) return null;
                return ErrorIds.Make(ErrorIds.NameInUse, ErrorCategory.ResourceExists,
                    "A P2P connection named '" + Name + "' is already open (Id " + holder.Id + ", " + holder.LocalEndpoint +
                    "). Choose another -Name or stop it first.", Name);
            }
            string? basis = DeviceId;
            if (_file != null)
            {
                try
                {
                    P2PProvisioning parsed = P2PProvisioning.FromJson(_file, NativeMethods.ProvisioningParse(_file));
                    basis = parsed.Name ?? parsed.DeviceId;
                    if (parsed.DeviceId != null) _target = parsed.DeviceId;
                }
                catch (P2PException)
                {
                    basis = null; // starting reports the file's problem
                }
            }
            name = null;
            if (basis == null || !taken.Contains(basis)) return null; // the library's default is free
            for (int n = 2; ; n++)
            {
                string candidate = basis + "#" + n;
                if (!taken.Contains(candidate))
                {
                    name = candidate;
                    return null;
                }
            }
        }

        private ErrorRecord? StartFromCredential(string? name, out ulong id)
        {
            id = 0;
            // CheckInput asked for the credential or refused this item without one.
            PSCredential credential = Credential ?? throw new InvalidOperationException("-Credential is required with a device UID.");
            var config = new Dictionary<string, object?>
            {
                ["device_id"] = DeviceId,
                ["user"] = credential.UserName,
                ["local_port"] = LocalPort,
                ["bind_address"] = BindAddress,
                ["encryption"] = Encryption.ToString(),
                ["autoconnect"] = AutoReconnect ? "reconnect" : "once",
            };
            if (name != null) config["name"] = name;
            if (Bound(nameof(MaxOutstanding))) config["max_outstanding"] = MaxOutstanding;
            if (Bound(nameof(Server))) config["server"] = Server;
            if (Bound(nameof(ServerKey))) config["server_key"] = ServerKey;
            if (DeviceKey != null) config["device_key"] = DeviceKey;
            if (AcceptDeviceKey != null) config["accept_key"] = AcceptDeviceKey;
            if (TrustFirstUse) config["trust_first_use"] = true;
            Dictionary<string, object> environment = HostEnvironment();
            if (environment.Count > 0) config["environment"] = environment;
            config["password"] = credential.GetNetworkCredential().Password;
            byte[] bytes = NativeMethods.ToUtf8Z(Json.Write(config));
            config.Clear();
            try
            {
                id = NativeMethods.SessionStart(bytes);
                return null;
            }
            catch (P2PException e)
            {
                return ErrorIds.FromException(ServerErrors.InCmdletTerms(e, fromFile: false), DeviceId);
            }
            finally
            {
                // The password is in these bytes: do not leave it in memory longer than needed.
                Array.Clear(bytes, 0, bytes.Length);
            }
        }

        private ErrorRecord? StartFromFile(string? name, out ulong id)
        {
            id = 0;
            string path = _file ?? throw new InvalidOperationException("No provisioning file was given.");
            var overrides = new Dictionary<string, object?>();
            if (name != null) overrides["name"] = name;
            if (Bound(nameof(LocalPort))) overrides["local_port"] = LocalPort;
            if (Bound(nameof(BindAddress))) overrides["bind_address"] = BindAddress;
            if (Bound(nameof(Server))) overrides["server"] = Server;
            if (Bound(nameof(ServerKey))) overrides["server_key"] = ServerKey;
            if (DeviceKey != null) overrides["device_key"] = DeviceKey;
            if (AcceptDeviceKey != null) overrides["accept_key"] = AcceptDeviceKey;
            if (TrustFirstUse) overrides["trust_first_use"] = true;
            // Used only where neither the file nor -Server/-ServerKey give a value.
            Dictionary<string, object> environment = HostEnvironment();
            if (environment.Count > 0) overrides["environment"] = environment;
            try
            {
                id = NativeMethods.SessionStartFile(path, overrides.Count > 0 ? Json.Write(overrides) : null);
                return null;
            }
            catch (P2PException e) when (e.Code == P2PResultCode.Provisioning)
            {
                return ErrorIds.FromException(new P2PProvisioningException(path, e), path);
            }
            catch (P2PException e)
            {
                return ErrorIds.FromException(ServerErrors.InCmdletTerms(e, fromFile: true), _target ?? path);
            }
        }
    }
}
